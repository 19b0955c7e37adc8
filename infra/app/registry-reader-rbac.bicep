// The production app's role on the Azure ML registry whose versions it rolls out.

param registryName string
param principalId string

// Built-in role definition id (identical in every tenant).
var reader = 'acdd72a7-3385-48ef-bd42-f606fba81ae7'

resource registry 'Microsoft.MachineLearningServices/registries@2024-04-01' existing = {
  name: registryName
}

// Reader, scoped to this one registry: the app reads its model versions (their tags carry the staging evidence),
// lists them for the resync, and names one in a deployment of its own workspace. "Manage Azure Machine Learning
// registries" (learn.microsoft.com/azure/machine-learning/how-to-manage-registries, "Allow users to use assets from
// the registry") names the built-in Reader for that; it writes nothing.
resource registryReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, reader)
  scope: registry
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', reader)
  }
}
