// The app identity's roles on the existing Azure ML workspace (deployed into its resource group).

param workspaceName string
param principalId string

// Built-in role definition ids (identical in every tenant).
var azureMlDataScientist = 'f6c7c914-8db3-469d-8ca1-694a8f32e121'
var monitoringReader = '43d0d8ad-25c7-4714-9337-8ba259a9fe05'

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

// AzureML Data Scientist, scoped to this one workspace: allows every workspaces/*/read, */write, */delete
// and */action except on the workspace itself, its compute, its keys and hubs — i.e. exactly the online
// endpoint and deployment writes, model reads and registrations, component reads and pipeline job
// submissions the app does. Narrower built-ins do not cover that: Reader and AzureML Metrics Writer
// cannot write endpoints, deployments or jobs, and AzureML Compute Operator only manages compute.
// Contributor is too broad: it could delete or reconfigure the workspace and compute and read its keys
// (workspaces/listKeys), which Data Scientist excludes through NotActions. It also covers scoring, for the smoke test
// and the live acceptance load: onlineEndpoints/listKeys/action (key auth) and onlineEndpoints/score/action (Entra
// token auth) both match workspaces/*/action ("Authenticate clients for online endpoints", Azure ML docs).
resource workspaceDataScientist 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, azureMlDataScientist)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', azureMlDataScientist)
  }
}

// Monitoring Reader, scoped to this one workspace: the metric gates read each online endpoint's platform metrics
// (GET {endpoint}/providers/Microsoft.Insights/metrics needs Microsoft.Insights/metrics/read). Endpoints are
// created by the app, so the scope is their parent, inherited by every endpoint. A custom role with only
// metrics/read is narrower but needs roleDefinitions/write (Owner or User Access Administrator) and leaves a
// tenant-level definition behind; docs/deploy.md weighs both and shows the swap.
resource workspaceMonitoringReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, monitoringReader)
  scope: workspace
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReader)
  }
}
