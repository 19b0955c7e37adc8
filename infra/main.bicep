// Entry point for `azd provision`: everything the app owns, in one resource group of its own.
//
// Nothing here is deployed into the Azure ML workspace's resource group on purpose: `azd down` deletes
// every resource group that holds a resource of this deployment (Azure/azure-dev#2916), which would take
// the workspace with it. The workspace-side pieces (role assignment, Event Grid system topic and
// subscription) live in workspace.bicep, deployed by the postdeploy hook; see "Deploy to Azure" in README.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region of the app resources. The Event Grid system topic always follows the workspace region.')
param location string

@minLength(1)
@description('ARM id of the existing Azure ML workspace: /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{name}.')
param amlWorkspaceId string

@allowed([
  'plan'
  'apply'
])
@description('plan = log what would be deployed; apply = deploy for real. Start with plan.')
param deployMode string = 'plan'

@description('Optional stage label recorded on rollouts (for example dev or prod).')
param deployStage string = ''

@description('Instance type used when a model does not ask for one.')
param defaultInstanceType string = 'Standard_DS3_v2'

@description('Guardrail: comma-separated instance types a model may ask for. Empty allows any.')
param allowedInstanceTypes string = 'Standard_DS2_v2,Standard_DS3_v2,Standard_DS4_v2,Standard_F4s_v2'

@description('Guardrail: highest instance count a model may ask for.')
param maxInstanceCount string = '3'

@description('Number of deployments to keep per endpoint after a rollout.')
param keepDeployments string = '2'

@allowed([
  'true'
  'false'
])
@description('Keep failed deployments for inspection instead of deleting them.')
param keepFailedDeployments string = 'false'

@description('Minutes after which an unfinished rollout is given up.')
param rolloutTimeoutMinutes string = '60'

@description('Reconciler attempts per rollout before it is given up.')
param rolloutMaxAttempts string = '10'

@description('NCRONTAB schedule of the reconciler (six fields, seconds first).')
param reconcileSchedule string = '0 */1 * * * *'

@description('Seconds one reconciler run may spend.')
param reconcileBudgetSeconds string = '45'

@description('Rollouts the reconciler advances in parallel.')
param reconcileConcurrency string = '4'

@description('Seconds one Event Grid delivery may spend; Event Grid gives up waiting after 30.')
param eventBudgetSeconds string = '10'

@description('Drift coefficient above which a DatasetDriftDetected event starts retraining.')
param driftThreshold string = '0.5'

@description('Optional pipeline component (azureml:NAME:VERSION) submitted on drift. Empty disables retraining.')
param retrainPipelineComponent string = ''

@description('Experiment name of retraining jobs.')
param retrainExperiment string = 'drift-retraining'

@description('Minutes between two retraining jobs for the same drift monitor.')
param retrainCooldownMinutes string = '360'

@description('Optional compute target for retraining jobs.')
param retrainCompute string = ''

@description('Optional key=value,... tags the retraining job carries, e.g. register_model=credit,model.deploy=true.')
param retrainJobTags string = ''

@allowed([
  'true'
  'false'
])
@description('Create an Event Grid custom topic (CloudEvents 1.0) that the app publishes rollout notifications to.')
param createNotifyTopic string = 'false'

@description('Optional Key Vault reference, @Microsoft.KeyVault(SecretUri=...), for NOTIFY_WEBHOOK_URL. Anything else is ignored, because webhook URLs carry tokens and parameters are stored in the deployment history.')
param notifyWebhookUrlReference string = ''

@minValue(1)
@maxValue(1000)
@description('Flex Consumption scale-out limit.')
param functionMaximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory; azure-ai-ml alone needs about 105 MiB per worker.')
param functionInstanceMemoryMB int = 2048

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var workspaceIdParts = split(amlWorkspaceId, '/')
var functionAppName = 'func-${resourceToken}'
var deploymentContainerName = 'app-package-${resourceToken}'
var deadLetterContainerName = 'eventgrid-deadletter'
var rolloutTableName = 'rollouts'
var idempotencyTableName = 'idempotency'
var notifyTopicEnabled = createNotifyTopic == 'true'
var notifyWebhookUrl = startsWith(notifyWebhookUrlReference, '@Microsoft.KeyVault(') ? notifyWebhookUrlReference : ''

// Settings the app code reads; host and identity settings are added in app/function.bicep.
// NOTIFY_TOPIC_KEY is deliberately absent: the app publishes with its managed identity.
var appSettings = {
  AML_ALLOWED_WORKSPACES: amlWorkspaceId
  DEPLOY_MODE: deployMode
  DEPLOY_STAGE: deployStage
  DEFAULT_INSTANCE_TYPE: defaultInstanceType
  ALLOWED_INSTANCE_TYPES: allowedInstanceTypes
  MAX_INSTANCE_COUNT: maxInstanceCount
  KEEP_DEPLOYMENTS: keepDeployments
  KEEP_FAILED_DEPLOYMENTS: keepFailedDeployments
  ROLLOUT_TIMEOUT_MINUTES: rolloutTimeoutMinutes
  ROLLOUT_MAX_ATTEMPTS: rolloutMaxAttempts
  ROLLOUT_TABLE: rolloutTableName
  IDEMPOTENCY_TABLE: idempotencyTableName
  RECONCILE_SCHEDULE: reconcileSchedule
  RECONCILE_BUDGET_SECONDS: reconcileBudgetSeconds
  RECONCILE_CONCURRENCY: reconcileConcurrency
  EVENT_BUDGET_SECONDS: eventBudgetSeconds
  NOTIFY_TOPIC_ENDPOINT: notifyTopicEnabled ? notifyTopic.outputs.endpoint : ''
  NOTIFY_WEBHOOK_URL: notifyWebhookUrl
  DRIFT_THRESHOLD: driftThreshold
  RETRAIN_PIPELINE_COMPONENT: retrainPipelineComponent
  RETRAIN_EXPERIMENT: retrainExperiment
  RETRAIN_COOLDOWN_MINUTES: retrainCooldownMinutes
  RETRAIN_COMPUTE: retrainCompute
  RETRAIN_JOB_TAGS: retrainJobTags
}

resource rg 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
    deadLetterContainerName: deadLetterContainerName
    tableNames: [
      rolloutTableName
      idempotencyTableName
    ]
  }
}

module notifyTopic 'app/topic.bicep' = if (notifyTopicEnabled) {
  name: 'notify-topic'
  scope: rg
  params: {
    name: 'evgt-${resourceToken}'
    location: location
    tags: tags
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    notifyTopicName: notifyTopicEnabled ? notifyTopic.outputs.name : ''
  }
}

module function 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    appSettings: appSettings
    maximumInstanceCount: functionMaximumInstanceCount
    instanceMemoryMB: functionInstanceMemoryMB
  }
  // The host starts as soon as the site exists; give it its storage roles first.
  dependsOn: [
    rbac
  ]
}

// azd stores these in .azure/<env>/.env; the postdeploy hook reads them. None of them is a secret.
output AZURE_LOCATION string = location
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = function.outputs.name
output AZURE_FUNCTION_APP_ID string = function.outputs.id
output AZURE_FUNCTION_URI string = function.outputs.uri
output APP_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output APP_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AML_WORKSPACE_SUBSCRIPTION_ID string = workspaceIdParts[2]
output AML_WORKSPACE_RESOURCE_GROUP string = workspaceIdParts[4]
output AML_WORKSPACE_NAME string = workspaceIdParts[8]
output DEADLETTER_STORAGE_ACCOUNT_ID string = storage.outputs.id
output DEADLETTER_CONTAINER_NAME string = deadLetterContainerName
output NOTIFY_TOPIC_ENDPOINT string = notifyTopicEnabled ? notifyTopic.outputs.endpoint : ''
