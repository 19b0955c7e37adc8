// Dead letters appearing: a metric alert on the Event Grid system topic's DeadLetteredCount for the app's
// subscription. Event Grid documents the metric for system topics (Total, PT1M grain, dimension
// EventSubscriptionName): https://learn.microsoft.com/azure/event-grid/monitor-push-reference
// A storage metric would not do: BlobCount is reported once a day and has no container dimension.
// Deployed next to the system topic (the workspace's resource group) because the topic only exists after
// the postdeploy hook; docs/deploy.md#tear-down removes it with the topic.

@description('Name of the Event Grid system topic on the workspace.')
param systemTopicName string

@description('Name of the event subscription whose dead letters are counted.')
param eventSubscriptionName string

@description('Action groups the alert notifies: the app\'s own, and any extra one.')
param actionGroupIds array

@description('Name of the alert rule.')
param name string

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource deadLetters 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: name
  location: 'global'
  properties: {
    description: 'Event Grid dead-lettered an Azure ML event after 24 h of failed deliveries; replay it (docs/operations.md#replay-an-event).'
    severity: 1
    enabled: true
    scopes: [
      systemTopic.id
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'dead-lettered'
          metricNamespace: 'Microsoft.EventGrid/systemTopics'
          metricName: 'DeadLetteredCount'
          dimensions: [
            {
              name: 'EventSubscriptionName'
              operator: 'Include'
              values: [
                eventSubscriptionName
              ]
            }
          ]
          timeAggregation: 'Total'
          operator: 'GreaterThan'
          threshold: 0
        }
      ]
    }
    autoMitigate: true
    actions: [
      for id in actionGroupIds: {
        actionGroupId: id
      }
    ]
  }
}

output id string = deadLetters.id
