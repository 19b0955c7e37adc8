# azd postdeploy hook (Windows): same steps as postdeploy.sh. Deploys infra/workspace.bicep into the Azure
# ML workspace's resource group after the code exists, outside `azd provision` so `azd down` never
# deletes the workspace's resource group.
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest

$required = 'AML_WORKSPACE_ID', 'AML_WORKSPACE_SUBSCRIPTION_ID', 'AML_WORKSPACE_RESOURCE_GROUP',
  'AZURE_FUNCTION_APP_ID', 'APP_IDENTITY_PRINCIPAL_ID', 'DEADLETTER_STORAGE_ACCOUNT_ID', 'DEADLETTER_CONTAINER_NAME'
foreach ($name in $required) {
  if (-not [Environment]::GetEnvironmentVariable($name)) {
    Write-Error "postdeploy: $name is not set; run 'azd provision' first."
  }
}
az account show --output none 2>$null
if ($LASTEXITCODE -ne 0) {
  Write-Error "postdeploy: the Azure CLI is not signed in; run 'az login' (same tenant as azd) and 'azd deploy' again."
}

$infraDir = Split-Path -Parent $PSScriptRoot
$envName = if ($env:AZURE_ENV_NAME) { $env:AZURE_ENV_NAME } else { 'azd' }
$deployment = "aml-events-$envName"
$sampleFilter = if ($env:AML_EVENT_SAMPLE_FILTER) { $env:AML_EVENT_SAMPLE_FILTER } else { 'false' }
$alertGroups = if ($env:ALERT_ACTION_GROUP_IDS) { $env:ALERT_ACTION_GROUP_IDS } else { '' }
$topicName = if ($env:EVENTGRID_SYSTEM_TOPIC_NAME) { $env:EVENTGRID_SYSTEM_TOPIC_NAME } else { '' }
Write-Host "postdeploy: wiring workspace events to on_aml_event (deployment $deployment in $env:AML_WORKSPACE_RESOURCE_GROUP)"

# Right after a deploy, the Flex app may still be indexing its functions; Event Grid then refuses the
# endpoint, so retry a few times before giving up.
$outputs = $null
for ($attempt = 1; $attempt -le 5; $attempt++) {
  $outputs = az deployment group create `
    --subscription $env:AML_WORKSPACE_SUBSCRIPTION_ID `
    --resource-group $env:AML_WORKSPACE_RESOURCE_GROUP `
    --name $deployment `
    --template-file (Join-Path $infraDir 'workspace.bicep') `
    --parameters "amlWorkspaceId=$env:AML_WORKSPACE_ID" "appPrincipalId=$env:APP_IDENTITY_PRINCIPAL_ID" `
      "functionAppId=$env:AZURE_FUNCTION_APP_ID" "deadLetterStorageAccountId=$env:DEADLETTER_STORAGE_ACCOUNT_ID" `
      "deadLetterContainerName=$env:DEADLETTER_CONTAINER_NAME" "systemTopicName=$topicName" `
      "enableSampleFilter=$sampleFilter" "alertActionGroupIds=$alertGroups" `
    --query "properties.outputs" --output json
  if ($LASTEXITCODE -eq 0) { break }
  if ($attempt -eq 5) {
    Write-Error "postdeploy: workspace deployment failed; see the error above, then run 'azd hooks run postdeploy'."
  }
  Write-Host "postdeploy: attempt $attempt failed; retrying in 30 s"
  Start-Sleep -Seconds 30
}

$parsed = ($outputs | Out-String) | ConvertFrom-Json

# Promotion (docs/promotion.md): the app's role on its registry, each in the registry's own resource group, and
# the optional subscription of this (production) app to a staging app's topic, in that topic's resource group.
# ARM ids split on '/': "" subscriptions {sub} resourceGroups {rg} providers {namespace} {type} {name}.
function Grant-RegistryRole([string]$registryId, [string]$access) {
  $parts = $registryId.Split('/')
  Write-Host "postdeploy: granting the app its $access role on registry $($parts[8])"
  az deployment group create --subscription $parts[2] --resource-group $parts[4] `
    --name "aml-registry-$envName-$access" --template-file (Join-Path $infraDir 'registry.bicep') `
    --parameters "registryName=$($parts[8])" "appPrincipalId=$env:APP_IDENTITY_PRINCIPAL_ID" "access=$access" `
    --output none
  if ($LASTEXITCODE -ne 0) { Write-Error "postdeploy: the registry role on $($parts[8]) was not granted" }
}
if ($env:PROMOTE_TO_REGISTRY_ID) { Grant-RegistryRole $env:PROMOTE_TO_REGISTRY_ID 'promote' }
if ($env:PROMOTION_REGISTRY_ID) { Grant-RegistryRole $env:PROMOTION_REGISTRY_ID 'read' }
if ($env:PROMOTION_SOURCE_TOPIC_ID) {
  $topic = $env:PROMOTION_SOURCE_TOPIC_ID.Split('/')
  Write-Host "postdeploy: subscribing on_aml_event to the promotions of staging topic $($topic[8])"
  az deployment group create --subscription $topic[2] --resource-group $topic[4] `
    --name "aml-promotions-$envName" --template-file (Join-Path $infraDir 'promotion-events.bicep') `
    --parameters "topicName=$($topic[8])" "functionAppId=$env:AZURE_FUNCTION_APP_ID" `
      "deadLetterStorageAccountId=$env:DEADLETTER_STORAGE_ACCOUNT_ID" "deadLetterContainerName=$env:DEADLETTER_CONTAINER_NAME" `
    --output none
  if ($LASTEXITCODE -ne 0) { Write-Error "postdeploy: the subscription to staging topic $($topic[8]) was not created" }
}
azd env set EVENTGRID_SYSTEM_TOPIC_NAME $parsed.systemTopicName.value
azd env set EVENTGRID_SUBSCRIPTION_ID $parsed.eventSubscriptionId.value
Write-Host "postdeploy: $($parsed.systemTopicName.value) delivers Azure ML events to $env:AZURE_FUNCTION_APP_NAME"
if ($env:ALERT_EMAIL_SET -ne 'true') {
  Write-Host "postdeploy: alerts fire in Azure Monitor but email nobody; set one with 'azd env set ALERT_EMAIL you@example.com' and 'azd provision' (docs/deploy.md#alerts)"
}
