// An Azure Monitor workbook over the app's Application Insights: rollouts by how they ended, gate verdicts over
// time, time from event to live traffic, notifications sent. Its content is workbook.json, checked by
// infra/check.sh against infra/workbook.schema.json; it was never rendered here (no Azure, see the README).

@description('Resource id of the Application Insights the app sends its OpenTelemetry metrics and logs to.')
param applicationInsightsId string
param location string
param tags object
param displayName string = 'AML event handler: rollouts'

// Opened from the gallery (not from Application Insights), the workbook reads this Application Insights.
var content = union(json(loadTextContent('workbook.json')), {
  fallbackResourceIds: [
    applicationInsightsId
  ]
})

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, applicationInsightsId, 'rollouts-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: applicationInsightsId
    serializedData: string(content)
    version: '1.0'
  }
}

output workbookId string = workbook.id
