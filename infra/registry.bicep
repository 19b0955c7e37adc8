// The app identity's role on an Azure ML registry (promotion, docs/promotion.md), deployed into the registry's
// resource group by the postdeploy hook (infra/hooks/postdeploy.sh) with `az deployment group create`, not by
// `azd provision`: `azd down` deletes every resource group its deployment touched (Azure/azure-dev#2916), and the
// registry's, shared by every environment, must never be one of them.
targetScope = 'resourceGroup'

@minLength(3)
@description('Name of the existing Azure ML registry, in this resource group.')
param registryName string

@description('Principal (object) id of the Function App user-assigned identity.')
param appPrincipalId string

@allowed([
  'promote'
  'read'
])
@description('promote: a staging app shares proven model versions into the registry; read: a production app reads its versions and deploys them.')
param access string

module promoter 'app/registry-rbac.bicep' = if (access == 'promote') {
  name: 'registry-promoter-rbac'
  params: {
    registryName: registryName
    principalId: appPrincipalId
  }
}

module reader 'app/registry-reader-rbac.bicep' = if (access == 'read') {
  name: 'registry-reader-rbac'
  params: {
    registryName: registryName
    principalId: appPrincipalId
  }
}
