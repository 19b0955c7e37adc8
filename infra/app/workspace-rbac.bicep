// The app identity's single role on the existing Azure ML workspace (deployed into its resource group).

param workspaceName string
param principalId string

// AzureML Data Scientist (built in).
var azureMlDataScientist = 'f6c7c914-8db3-469d-8ca1-694a8f32e121'

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

// AzureML Data Scientist, scoped to this one workspace: allows every workspaces/*/read, */write, */delete
// and */action except on the workspace itself, its compute, its keys and hubs — i.e. exactly the online
// endpoint and deployment writes, model reads and registrations, component reads and pipeline job
// submissions the app does. Narrower built-ins do not cover that: Reader and AzureML Metrics Writer
// cannot write endpoints, deployments or jobs, and AzureML Compute Operator only manages compute.
// Contributor is too broad: it could delete or reconfigure the workspace and compute and read its keys
// (listKeys), which Data Scientist excludes through NotActions.
resource workspaceDataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, azureMlDataScientist)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', azureMlDataScientist)
  }
}
