// Event Grid system topic on the existing workspace and the subscription that delivers its events to the
// on_aml_event function, with retries and identity-based dead-lettering into the app's storage.

param workspaceName string
param systemTopicName string
param eventSubscriptionName string
param functionAppId string
param deadLetterStorageAccountId string
param deadLetterContainerName string
param enableSampleFilter bool = false

var amlEventTypes = [
  'Microsoft.MachineLearningServices.ModelRegistered'
  'Microsoft.MachineLearningServices.ModelDeployed'
  'Microsoft.MachineLearningServices.RunCompleted'
  'Microsoft.MachineLearningServices.RunStatusChanged'
  'Microsoft.MachineLearningServices.DatasetDriftDetected'
]

// The 2019 sample's filter. Only ModelRegistered carries modelTags, so with it on, the other four
// event types (and so drift-triggered retraining) are no longer delivered.
var sampleFilters = [
  {
    operatorType: 'StringIn'
    key: 'data.modelTags.ncd'
    values: [
      'true'
    ]
  }
  {
    operatorType: 'StringIn'
    key: 'data.modelTags.stage'
    values: [
      'production'
    ]
  }
]

var storageIdParts = split(deadLetterStorageAccountId, '/')

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

// A system topic must live in its source's resource group and region.
resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: workspace.location
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: workspace.id
    topicType: 'Microsoft.MachineLearningServices.Workspaces'
  }
}

// The dead-letter container sits in the app's resource group (maybe another subscription).
module deadLetterRbac 'deadletter-rbac.bicep' = {
  name: 'aml-events-deadletter-rbac'
  scope: resourceGroup(storageIdParts[2], storageIdParts[4])
  params: {
    storageAccountName: storageIdParts[8]
    containerName: deadLetterContainerName
    principalId: systemTopic.identity.principalId
  }
}

resource eventSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: eventSubscriptionName
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
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: amlEventTypes
      enableAdvancedFilteringOnArrays: true
      advancedFilters: enableSampleFilter ? sampleFilters : []
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

output systemTopicName string = systemTopic.name
output systemTopicPrincipalId string = systemTopic.identity.principalId
output eventSubscriptionId string = eventSubscription.id
