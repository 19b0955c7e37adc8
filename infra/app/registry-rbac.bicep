// The staging app's role on the Azure ML registry it promotes into: what models.share and the evidence need.

param registryName string
param principalId string

resource registry 'Microsoft.MachineLearningServices/registries@2024-04-01' existing = {
  name: registryName
}

// A custom role, assignable on this registry only: read the registry and its assets, create and update assets.
// "Manage Azure Machine Learning registries" (learn.microsoft.com/azure/machine-learning/how-to-manage-registries,
// "Allow users to create and use assets from the registry") lists exactly these three actions for it; the built-in
// AzureML Registry User (registries/read, registries/assets/*) would add deleting assets, which promotion never does,
// and Contributor would add deleting the registry itself. The app shares (an import on the registry's data plane)
// and then writes its evidence as the version's tags; nothing else.
resource promoterRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(registry.id, 'aml-event-handler-registry-promoter')
  scope: registry
  properties: {
    roleName: 'AML event handler registry promoter (${registryName})'
    description: 'Share model versions into this Azure ML registry and tag them; no deletes.'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.MachineLearningServices/registries/read'
          'Microsoft.MachineLearningServices/registries/assets/read'
          'Microsoft.MachineLearningServices/registries/assets/write'
        ]
        notActions: []
      }
    ]
    assignableScopes: [
      registry.id
    ]
  }
}

// The promoter role above, scoped to this one registry (not its resource group, which may hold others).
resource registryPromoter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(registry.id, principalId, promoterRole.id)
  scope: registry
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: promoterRole.id
  }
}
