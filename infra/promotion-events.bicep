// Optional: the Event Grid subscription that delivers a staging app's AmlEvents.Model.Promoted to this (production)
// app's on_aml_event, from the staging app's custom topic (docs/promotion.md). Deployed into the topic's resource
// group by the production environment's postdeploy hook when PROMOTION_SOURCE_TOPIC_ID is set: the function must
// exist first (Event Grid refuses a subscription to one that does not), and `azd down` must never delete the
// staging environment's resource group (Azure/azure-dev#2916).
targetScope = 'resourceGroup'

@minLength(3)
@description('Name of the staging app\'s existing Event Grid custom topic, in this resource group.')
param topicName string

@description('ARM id of the production Function App that hosts on_aml_event.')
param functionAppId string

@description('ARM id of the production app\'s storage account that receives dead-lettered events.')
param deadLetterStorageAccountId string

@description('Blob container for dead-lettered events.')
param deadLetterContainerName string

var functionAppName = last(split(functionAppId, '/'))
var storageIdParts = split(deadLetterStorageAccountId, '/')

resource topic 'Microsoft.EventGrid/topics@2022-06-15' existing = {
  name: topicName
}

// The staging topic's identity writes this subscription's dead letters into the production app's container.
module deadLetterRbac 'app/deadletter-rbac.bicep' = {
  name: 'promotion-events-deadletter-rbac'
  scope: resourceGroup(storageIdParts[2], storageIdParts[4])
  params: {
    storageAccountName: storageIdParts[8]
    containerName: deadLetterContainerName
    principalId: topic.identity.principalId
  }
}

resource promotions 'Microsoft.EventGrid/topics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: take('${functionAppName}-promotions', 64)
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/on_aml_event'
        // The Functions trigger takes one event per invocation.
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    // The staging app publishes CloudEvents 1.0 (its topic's input schema); they are delivered as they are.
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    filter: {
      includedEventTypes: [
        'AmlEvents.Model.Promoted'
      ]
    }
    // Event Grid's maximum: 24 h of retries, then the event is kept as a dead letter instead of dropped.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterStorageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
  dependsOn: [
    deadLetterRbac
  ]
}

output eventSubscriptionId string = promotions.id
