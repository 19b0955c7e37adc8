// Optional roles of the on-call operator (a user, a group or a service principal): exactly what the runbooks in
// docs/operations.md need beyond the function key, each a data-plane or read role on the one resource it touches.

@description('Object id of the operator (user, group or service principal).')
param principalId string
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param principalType string
param storageAccountName string
param rolloutTableName string
param deadLetterContainerName string
param applicationInsightsName string

// Built-in role definition ids (identical in every tenant).
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var storageBlobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var monitoringReader = '43d0d8ad-25c7-4714-9337-8ba259a9fe05'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource rolloutTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' existing = {
  parent: tableService
  name: rolloutTableName
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: storage
  name: 'default'
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: deadLetterContainerName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Storage Table Data Contributor on the rollouts table only (not the account, not the idempotency table): ledger
// surgery when the operator controls cannot help (an unreadable row, a retry without the controls).
resource operatorLedger 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(rolloutTable.id, principalId, storageTableDataContributor)
  scope: rolloutTable
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
  }
}

// Storage Blob Data Reader on the dead-letter container only: download dead-lettered events to replay them. Read
// only, and not the account's other containers (host state, deployment package).
resource operatorDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterContainer.id, principalId, storageBlobDataReader)
  scope: deadLetterContainer
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataReader)
  }
}

// Monitoring Reader on Application Insights only: run the runbooks' KQL over the app's traces (resource-context
// queries) and read its metrics. Read only; it cannot change the component, the alerts or the workspace.
resource operatorLogs 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringReader)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReader)
  }
}
