// Roles of the app's user-assigned identity on the resources in its own resource group. Least privilege:
// data-plane roles on the single resource that needs them, never on the resource group.

param principalId string
param storageAccountName string
param applicationInsightsName string
@description('Name of the optional notification topic; empty when it was not created.')
param notifyTopicName string = ''

// Built-in role definition ids (identical in every tenant).
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'
var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource notifyTopic 'Microsoft.EventGrid/topics@2022-06-15' existing = {
  name: notifyTopicName
}

// Storage Blob Data Owner: the Functions docs list this role for an identity-based AzureWebJobsStorage
// connection (the host keeps function keys, timer-trigger schedule state and singleton leases in blobs);
// the Flex platform also reads the deployment package container with this identity.
resource storageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwner)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
  }
}

// Storage Queue Data Contributor: the app sends follow-up checks to its queue (ROLLOUT_QUEUE) and the host's
// queue trigger reads, deletes and moves poison messages there; the Functions docs list this role for a queue
// trigger with an identity-based connection. Message access only; it cannot change account settings or keys.
resource storageQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageQueueDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
  }
}

// Storage Table Data Contributor: the app reads and writes the rollout ledger and idempotency tables.
// Entity access only; it cannot change account settings or keys.
resource storageTableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageTableDataContributor)
  scope: storage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
  }
}

// Monitoring Metrics Publisher: App Insights has local auth disabled, so telemetry is only accepted with
// a token of an identity holding this role (APPLICATIONINSIGHTS_AUTHENTICATION_STRING). Publish only.
resource appInsightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
  }
}

// EventGrid Data Sender: publish rollout notifications to the custom topic (local auth is off there).
// Send only, on that one topic; it cannot read keys or manage subscriptions.
resource notifyTopicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(notifyTopicName)) {
  name: guid(notifyTopic.id, principalId, eventGridDataSender)
  scope: notifyTopic
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
  }
}
