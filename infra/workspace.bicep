// Workspace-side wiring, deployed into the Azure ML workspace's resource group by the postdeploy hook
// (infra/hooks/postdeploy.sh) with `az deployment group create`, not by `azd provision`:
//  - the event subscription can only be created once the function code (on_aml_event) is deployed, and
//  - `azd down` deletes every resource group its deployment touched (Azure/azure-dev#2916), which must
//    never include the workspace's resource group.
targetScope = 'resourceGroup'

@minLength(1)
@description('ARM id of the existing Azure ML workspace; its resource group is the target of this deployment.')
param amlWorkspaceId string

@description('Principal (object) id of the Function App user-assigned identity.')
param appPrincipalId string

@description('ARM id of the Function App that hosts on_aml_event.')
param functionAppId string

@description('ARM id of the app storage account that receives dead-lettered events.')
param deadLetterStorageAccountId string

@description('Blob container for dead-lettered events.')
param deadLetterContainerName string

@description('Event Grid allows one system topic per workspace: set the name of an existing one to reuse it.')
param systemTopicName string = ''

@allowed([
  'true'
  'false'
])
@description('Deliver only ModelRegistered events tagged ncd=true and stage=production, like the original sample.')
param enableSampleFilter string = 'false'

@description('Comma-separated ARM ids of the action groups the dead-letter alert notifies (main.bicep output ALERT_ACTION_GROUP_IDS). Empty: no dead-letter alert.')
param alertActionGroupIds string = ''

var workspaceIdParts = split(amlWorkspaceId, '/')
var workspaceName = workspaceIdParts[8]
var functionAppName = last(split(functionAppId, '/'))

module workspaceRbac 'app/workspace-rbac.bicep' = {
  name: 'aml-workspace-rbac'
  params: {
    workspaceName: workspaceName
    principalId: appPrincipalId
  }
}

module events 'app/eventgrid.bicep' = {
  name: 'aml-workspace-events'
  params: {
    workspaceName: workspaceName
    systemTopicName: empty(systemTopicName) ? 'evgst-${workspaceName}' : systemTopicName
    eventSubscriptionName: take('${functionAppName}-on-aml-event', 64)
    functionAppId: functionAppId
    deadLetterStorageAccountId: deadLetterStorageAccountId
    deadLetterContainerName: deadLetterContainerName
    enableSampleFilter: enableSampleFilter == 'true'
  }
  // The app must be able to act on what it is told about.
  dependsOn: [
    workspaceRbac
  ]
}

// Dead letters appearing; beside the system topic, which exists only from here on.
module deadLetterAlert 'app/deadletter-alert.bicep' = if (!empty(alertActionGroupIds)) {
  name: 'aml-events-deadletter-alert'
  params: {
    name: 'deadletters-${functionAppName}'
    systemTopicName: events.outputs.systemTopicName
    eventSubscriptionName: last(split(events.outputs.eventSubscriptionId, '/'))
    actionGroupIds: split(alertActionGroupIds, ',')
  }
}

output systemTopicName string = events.outputs.systemTopicName
output eventSubscriptionId string = events.outputs.eventSubscriptionId
