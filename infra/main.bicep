// Entry point for `azd provision`: everything the app owns, in one resource group of its own.
//
// Nothing here is deployed into the Azure ML workspace's resource group on purpose: `azd down` deletes
// every resource group that holds a resource of this deployment (Azure/azure-dev#2916), which would take
// the workspace with it. The workspace-side pieces (role assignment, Event Grid system topic and
// subscription) live in workspace.bicep, deployed by the postdeploy hook; see docs/deploy.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; seeds resource names and the azd-env-name tag.')
param environmentName string

@minLength(1)
@description('Region of the app resources. The Event Grid system topic always follows the workspace region.')
param location string

@minLength(1)
@description('ARM id of the Azure ML workspace whose events the app honours: /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{name}.')
param amlWorkspaceId string

@allowed([
  'plan'
  'apply'
  'hold'
])
@description('plan records and notifies what the app would do and writes nothing to Azure ML; apply deploys, retrains and registers models; hold is the kill switch: events and rollouts are still recorded, the reconciler still reads AML and Azure Monitor and notifies, but no write goes to Azure ML (no deployment, traffic change, smoke test, rollback or cleanup delete, no retraining or registration) until the mode is apply again, when rollouts resume where they were. Start with plan.')
param deployMode string = 'plan'

@description('Filter: when set, every model whose stage tag differs from it (case-insensitively), or that has no stage tag, is skipped. Empty: the stage tag is ignored.')
param deployStage string = ''

@description('VM size of a deployment when the model has no instance_type tag.')
param defaultInstanceType string = 'Standard_DS3_v2'

@description('Cost guardrail: comma-separated VM sizes a deployment may use, compared case-insensitively. Empty allows any.')
param allowedInstanceTypes string = 'Standard_DS2_v2,Standard_DS3_v2,Standard_DS4_v2,Standard_F4s_v2'

@description('Cost guardrail: the largest instance_count tag a model may carry (1..100).')
param maxInstanceCount string = '3'

@description('How many of its own deployments the app keeps on an endpoint after a blue/green cut-over, the live one included (1..20).')
param keepDeployments string = '2'

@allowed([
  'true'
  'false'
])
@description('true keeps a failed deployment for inspection instead of deleting it.')
param keepFailedDeployments string = 'false'

@description('Endpoints the app did not create that it may deploy into: comma-separated endpoint names, or a lone asterisk for every endpoint. Empty: the app changes only endpoints it created (tag managed-by=aml-event-handler).')
param adoptEndpoints string = ''

@allowed([
  'true'
  'false'
])
@description('true rejects a rollout whose model has no sample request (no smoke_request tag and no readable MLflow input example); false skips the smoke test then, and the rollout\'s reason says so.')
param smokeRequired string = 'false'

@allowed([
  'true'
  'false'
])
@description('true refuses every model tag key that is not a tag of the contract; false refuses only keys that look like a misspelled tag (trafic, bake_time) and lets users\' own keys pass.')
param strictTags string = 'false'

@description('Seconds the smoke request may take before the smoke test fails (1..300).')
param smokeTimeoutSeconds string = '30'

@description('How long each traffic step is watched before the next when the model has no bake tag: a duration such as 90s, 10m or 1h (at most 24h). 0s: the steps advance without gates.')
param bakeDefault string = '10m'

@description('Largest server-error share, in percent of the new deployment\'s requests in a bake window, that passes the gate (0..100).')
param gateMaxErrorRate string = '1'

@description('Largest ratio of the new deployment\'s P99 latency to the stable deployment\'s that passes the gate (1..100).')
param gateMaxLatencyRatio string = '1.5'

@description('Largest P99 latency, in milliseconds, of the new deployment that passes the gate. Empty: no absolute limit while a stable deployment gives a baseline; without one (a new endpoint, or the final step at 100%), 4000 ms, 80% of Azure ML\'s default scoring timeout.')
param gateMaxP99Ms string = ''

@description('The answers the gate counts as the new deployment\'s failures: comma-separated status classes (4xx, 5xx) and codes (400..599), matched against the endpoint\'s status and, behind a 424, the model\'s status.')
param gateErrorStatusCodes string = '5xx,408,429'

@description('Fewest requests the new deployment must serve in a bake window for the gate to judge it; fewer make the result inconclusive (1..10000000).')
param gateMinRequests string = '100'

@description('Azure Monitor data points newer than now minus this duration are left out of the gate, because platform metrics arrive a minute or more late (at most 1h).')
param gateMetricLag string = '2m'

@description('How many times an inconclusive gate extends the bake by one more bake before GATE_INCONCLUSIVE applies (0..100).')
param gateMaxExtensions string = '2'

@allowed([
  'hold'
  'promote'
  'rollback'
])
@description('What an inconclusive gate does once the extensions are used up: hold (stay at the step until an operator acts), promote (count the step as passed) or rollback.')
param gateInconclusive string = 'hold'

@description('Minutes after which an unfinished rollout fails, counted from when it took the endpoint\'s write turn, not from when it was queued (1..1440).')
param rolloutTimeoutMinutes string = '60'

@description('Consecutive transient failures (5xx, 429, network) of one rollout\'s steps after which it fails, on the event path and in the reconciler alike (1..1000).')
param rolloutMaxAttempts string = '10'

@description('NCRONTAB schedule of the reconciler timer (six fields, seconds first), read by the Functions host.')
param reconcileSchedule string = '0 */1 * * * *'

@description('NCRONTAB schedule of the retention timer (six fields, seconds first), read by the Functions host.')
param retentionSchedule string = '0 30 3 * * *'

@description('Days a finished rollout (any state but pending, deploying and baking) is kept after its last update, and an idempotency record after its last claim or completion (2..3650).')
param rolloutRetentionDays string = '90'

@description('Seconds one reconciler tick may spend (1..600); the endpoints left over go to the follow-up queue.')
param reconcileBudgetSeconds string = '45'

@description('Endpoints the reconciler advances in parallel in one tick (1..64).')
param reconcileConcurrency string = '4'

@description('Seconds the event path may spend advancing a new rollout before it answers Event Grid, which waits 30 (1..25).')
param eventBudgetSeconds string = '10'

@description('Comma-separated run statuses whose RunStatusChanged events notify, compared case-insensitively (Azure ML raises the event for every status change).')
param notifyRunStatuses string = 'Failed,Canceled'

@description('NCRONTAB schedule of the resync timer resync_models, which deploys deploy=true models that no event announced. Empty turns the resync off.')
param resyncSchedule string = '0 0 * * * *'

@description('Most models one resync run looks at (1..5000).')
param resyncMaxModels string = '200'

@description('Drift coefficient at or above which a DatasetDriftDetected event (legacy v1 data drift) submits retraining (0..1).')
param driftThreshold string = '0.5'

@description('Registered pipeline component submitted as a pipeline job on a model-monitoring breach or on drift: name:version, or name@latest for its most recently created version. Empty disables retraining for both signals.')
param retrainPipelineComponent string = ''

@description('Experiment the retraining jobs run in.')
param retrainExperiment string = 'drift-retraining'

@description('At most one retraining per monitor (model monitor or drift monitor) in this many minutes, counted from the claim; 0 disables the cooldown.')
param retrainCooldownMinutes string = '360'

@description('Default compute of the retraining pipeline job, a compute name in the workspace.')
param retrainCompute string = ''

@description('Comma-separated key=value tags every retraining job carries, for example register_model=credit,model.deploy=true, so that its completed run registers the model and the new version rolls out.')
param retrainJobTags string = ''

@description('Staging side of a promotion: ARM id of the Azure ML registry proven models are shared into (/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/registries/{name}); its name becomes PROMOTE_TO_REGISTRY, and the postdeploy hook grants the app its role there. Empty: nothing is promoted.')
param promoteToRegistryId string = ''

@allowed([
  'true'
  'false'
])
@description('true promotes every proven rollout, not only models tagged promote=true.')
param promoteAll string = 'false'

@description('Production side of a promotion: comma-separated ARM ids of the staging workspaces whose AmlEvents.Model.Promoted events the app takes (the source the staging app stamps on its CloudEvents), compared case-insensitively. Empty: every such event is ignored (fail closed), and the resync skips registry versions whose evidence names another workspace.')
param promotionSources string = ''

@description('Production side of a promotion: ARM id of the Azure ML registry whose versions the app rolls out; its name becomes PROMOTION_REGISTRIES, and the postdeploy hook grants the app read access there. Empty: no promoted version is rolled out.')
param promotionRegistryId string = ''

@allowed([
  'true'
  'false'
])
@description('true makes every rollout wait for an operator\'s approve before any live traffic, once its smoke test passed. A model may also ask for it with the tag approval=required; no tag can waive it.')
param requireApproval string = 'false'

@description('How long a rollout waits for an approval before it ends expired, with a notification: a duration such as 30m, 24h or 168h (1m..2160h).')
param approvalTimeout string = '168h'

@allowed([
  'true'
  'false'
])
@description('Create an Event Grid custom topic (CloudEvents 1.0) that the app publishes rollout notifications to.')
param createNotifyTopic string = 'false'

@description('Optional Key Vault reference, @Microsoft.KeyVault(SecretUri=...), for NOTIFY_WEBHOOK_URL. Anything else is ignored, because webhook URLs carry tokens and parameters are stored in the deployment history.')
param notifyWebhookUrlReference string = ''

@description('Email address the alerts notify (function failures, failed or rolled-back rollouts, reconciler not running, dead letters). Empty: the alerts still fire and show in Azure Monitor, but notify nobody.')
param alertEmail string = ''

@description('ARM id of an existing action group of yours (for example one that posts to Teams or Slack) that every alert notifies as well. Empty: none.')
param alertExtraActionGroupId string = ''

@allowed([
  'PT15M'
  'PT30M'
  'PT1H'
  'PT2H'
  'PT6H'
])
@description('How long without a reconciler tick before the "reconciler not running" alert fires; keep it several times the reconcileSchedule interval.')
param reconcilerSilenceWindow string = 'PT15M'

@description('Object id of the on-call operator (a user, a group or a service principal) to grant the runbooks\' roles: Storage Table Data Contributor on the rollouts table, Storage Blob Data Reader on the dead-letter container, Monitoring Reader on Application Insights. Empty: none.')
param operatorPrincipalId string = ''

@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
@description('What operatorPrincipalId is.')
param operatorPrincipalType string = 'User'

// Why 10 (docs/operations.md, "Sizing"): every instance calls ARM as the same principal, and ARM's token bucket for
// one principal (25 reads a second, 250 at once; 10 writes a second) is shared by all of them. A follow-up pass makes
// about two ARM reads; one queue instance keeps 12 passes in flight (host.json batchSize 8 + newBatchThreshold 4), so
// two or three instances already reach ARM's sustained read rate: more only buy 429s, which every instance then waits
// out (app/azure/throttle.py). 10 leaves room for the Event Grid, HTTP and timer functions, which Flex Consumption
// scales separately, and for a burst's deliveries.
@minValue(1)
@maxValue(1000)
@description('Flex Consumption scale-out limit.')
param functionMaximumInstanceCount int = 10

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
var rolloutQueueName = 'rollout-followups'
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
  ADOPT_ENDPOINTS: adoptEndpoints
  SMOKE_REQUIRED: smokeRequired
  SMOKE_TIMEOUT_SECONDS: smokeTimeoutSeconds
  STRICT_TAGS: strictTags
  BAKE_DEFAULT: bakeDefault
  GATE_MAX_ERROR_RATE: gateMaxErrorRate
  GATE_MAX_LATENCY_RATIO: gateMaxLatencyRatio
  GATE_MAX_P99_MS: gateMaxP99Ms
  GATE_ERROR_STATUS_CODES: gateErrorStatusCodes
  GATE_MIN_REQUESTS: gateMinRequests
  GATE_METRIC_LAG: gateMetricLag
  GATE_MAX_EXTENSIONS: gateMaxExtensions
  GATE_INCONCLUSIVE: gateInconclusive
  ROLLOUT_TIMEOUT_MINUTES: rolloutTimeoutMinutes
  ROLLOUT_MAX_ATTEMPTS: rolloutMaxAttempts
  ROLLOUT_TABLE: rolloutTableName
  IDEMPOTENCY_TABLE: idempotencyTableName
  ROLLOUT_QUEUE: rolloutQueueName
  RECONCILE_SCHEDULE: reconcileSchedule
  RETENTION_SCHEDULE: retentionSchedule
  ROLLOUT_RETENTION_DAYS: rolloutRetentionDays
  RECONCILE_BUDGET_SECONDS: reconcileBudgetSeconds
  RECONCILE_CONCURRENCY: reconcileConcurrency
  EVENT_BUDGET_SECONDS: eventBudgetSeconds
  NOTIFY_RUN_STATUSES: notifyRunStatuses
  // The timer needs a valid schedule even when off: an empty RESYNC_SCHEDULE keeps the default expression and
  // disables the function the host's way (https://learn.microsoft.com/azure/azure-functions/disable-function).
  RESYNC_SCHEDULE: empty(resyncSchedule) ? '0 0 * * * *' : resyncSchedule
  'AzureWebJobs.resync_models.Disabled': empty(resyncSchedule) ? 'true' : 'false'
  RESYNC_MAX_MODELS: resyncMaxModels
  NOTIFY_TOPIC_ENDPOINT: notifyTopicEnabled ? notifyTopic.outputs.endpoint : ''
  NOTIFY_WEBHOOK_URL: notifyWebhookUrl
  DRIFT_THRESHOLD: driftThreshold
  RETRAIN_PIPELINE_COMPONENT: retrainPipelineComponent
  RETRAIN_EXPERIMENT: retrainExperiment
  RETRAIN_COOLDOWN_MINUTES: retrainCooldownMinutes
  RETRAIN_COMPUTE: retrainCompute
  RETRAIN_JOB_TAGS: retrainJobTags
  PROMOTE_TO_REGISTRY: empty(promoteToRegistryId) ? '' : last(split(promoteToRegistryId, '/'))
  PROMOTE_ALL: promoteAll
  PROMOTION_SOURCES: promotionSources
  PROMOTION_REGISTRIES: empty(promotionRegistryId) ? '' : last(split(promotionRegistryId, '/'))
  REQUIRE_APPROVAL: requireApproval
  APPROVAL_TIMEOUT: approvalTimeout
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
    queueNames: [
      rolloutQueueName
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

// The runbooks' roles for an on-call operator, when one is named (docs/deploy.md#roles-granted-least-privilege).
module operatorRbac 'app/operator-rbac.bicep' = if (!empty(operatorPrincipalId)) {
  name: 'operator-rbac'
  scope: rg
  params: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    storageAccountName: storage.outputs.name
    rolloutTableName: rolloutTableName
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
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

// Alerts on by default; the dead-letter alert follows the system topic (workspace.bicep, via the postdeploy hook).
module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    name: resourceToken
    location: location
    tags: tags
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    alertEmail: alertEmail
    extraActionGroupId: alertExtraActionGroupId
    reconcilerSilenceWindow: reconcilerSilenceWindow
  }
}

// The same picture as the dashboard, in the portal: Application Insights -> Workbooks (infra/app/workbook.json).
module workbook 'app/workbook.bicep' = {
  name: 'workbook'
  scope: rg
  params: {
    applicationInsightsId: monitoring.outputs.applicationInsightsId
    location: location
    tags: tags
  }
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
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output DEADLETTER_CONTAINER_NAME string = deadLetterContainerName
output NOTIFY_TOPIC_ENDPOINT string = notifyTopicEnabled ? notifyTopic.outputs.endpoint : ''
// A production environment subscribes to a staging environment's topic with it (PROMOTION_SOURCE_TOPIC_ID).
output NOTIFY_TOPIC_ID string = notifyTopicEnabled ? notifyTopic.outputs.id : ''
output ALERT_ACTION_GROUP_IDS string = join(alerts.outputs.actionGroupIds, ',')
output ALERT_EMAIL_SET bool = !empty(alertEmail)
