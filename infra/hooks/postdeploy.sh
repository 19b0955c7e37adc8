#!/usr/bin/env bash
# azd postdeploy hook: deploys infra/workspace.bicep into the Azure ML workspace's resource group (role on
# the workspace, Event Grid system topic, subscription to on_aml_event). It runs after the code is deployed
# because Event Grid rejects a subscription to a function that does not exist yet, and it stays outside
# `azd provision` so that `azd down` never deletes the workspace's resource group.
set -euo pipefail

for name in AML_WORKSPACE_ID AML_WORKSPACE_SUBSCRIPTION_ID AML_WORKSPACE_RESOURCE_GROUP \
  AZURE_FUNCTION_APP_ID APP_IDENTITY_PRINCIPAL_ID DEADLETTER_STORAGE_ACCOUNT_ID DEADLETTER_CONTAINER_NAME; do
  if [[ -z "${!name:-}" ]]; then
    echo "postdeploy: $name is not set; run 'azd provision' first." >&2
    exit 1
  fi
done
if ! az account show --output none 2>/dev/null; then
  echo "postdeploy: the Azure CLI is not signed in; run 'az login' (same tenant as azd) and 'azd deploy' again." >&2
  exit 1
fi

infra_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deployment="aml-events-${AZURE_ENV_NAME:-azd}"
echo "postdeploy: wiring workspace events to on_aml_event (deployment $deployment in $AML_WORKSPACE_RESOURCE_GROUP)"

# Right after a deploy, the Flex app may still be indexing its functions; Event Grid then refuses the
# endpoint, so retry a few times before giving up.
for attempt in 1 2 3 4 5; do
  if outputs="$(az deployment group create \
    --subscription "$AML_WORKSPACE_SUBSCRIPTION_ID" \
    --resource-group "$AML_WORKSPACE_RESOURCE_GROUP" \
    --name "$deployment" \
    --template-file "$infra_dir/workspace.bicep" \
    --parameters \
      amlWorkspaceId="$AML_WORKSPACE_ID" \
      appPrincipalId="$APP_IDENTITY_PRINCIPAL_ID" \
      functionAppId="$AZURE_FUNCTION_APP_ID" \
      deadLetterStorageAccountId="$DEADLETTER_STORAGE_ACCOUNT_ID" \
      deadLetterContainerName="$DEADLETTER_CONTAINER_NAME" \
      systemTopicName="${EVENTGRID_SYSTEM_TOPIC_NAME:-}" \
      enableSampleFilter="${AML_EVENT_SAMPLE_FILTER:-false}" \
      alertActionGroupIds="${ALERT_ACTION_GROUP_IDS:-}" \
    --query "[properties.outputs.systemTopicName.value, properties.outputs.eventSubscriptionId.value]" \
    --output tsv)"; then
    break
  fi
  if [[ "$attempt" == 5 ]]; then
    echo "postdeploy: workspace deployment failed; see the error above, then run 'azd hooks run postdeploy'." >&2
    exit 1
  fi
  echo "postdeploy: attempt $attempt failed; retrying in 30 s"
  sleep 30
done

read -r topic subscription <<<"$(echo "$outputs" | tr '\n' ' ')"
# Promotion (docs/promotion.md): the app's role on its registry, each in the registry's own resource group, and
# the optional subscription of this (production) app to a staging app's topic, in that topic's resource group.
# ARM ids split on '/': "" subscriptions {sub} resourceGroups {rg} providers {namespace} {type} {name}.
registry_role() {
  local sub rg name
  IFS=/ read -r _ _ sub _ rg _ _ _ name <<<"$1"
  echo "postdeploy: granting the app its $2 role on registry $name"
  az deployment group create --subscription "$sub" --resource-group "$rg" \
    --name "aml-registry-${AZURE_ENV_NAME:-azd}-$2" --template-file "$infra_dir/registry.bicep" \
    --parameters registryName="$name" appPrincipalId="$APP_IDENTITY_PRINCIPAL_ID" access="$2" --output none
}
if [[ -n "${PROMOTE_TO_REGISTRY_ID:-}" ]]; then registry_role "$PROMOTE_TO_REGISTRY_ID" promote; fi
if [[ -n "${PROMOTION_REGISTRY_ID:-}" ]]; then registry_role "$PROMOTION_REGISTRY_ID" read; fi
if [[ -n "${PROMOTION_SOURCE_TOPIC_ID:-}" ]]; then
  IFS=/ read -r _ _ topic_sub _ topic_rg _ _ _ topic_name <<<"$PROMOTION_SOURCE_TOPIC_ID"
  echo "postdeploy: subscribing on_aml_event to the promotions of staging topic $topic_name"
  az deployment group create --subscription "$topic_sub" --resource-group "$topic_rg" \
    --name "aml-promotions-${AZURE_ENV_NAME:-azd}" --template-file "$infra_dir/promotion-events.bicep" \
    --parameters topicName="$topic_name" functionAppId="$AZURE_FUNCTION_APP_ID" \
      deadLetterStorageAccountId="$DEADLETTER_STORAGE_ACCOUNT_ID" deadLetterContainerName="$DEADLETTER_CONTAINER_NAME" \
    --output none
fi

azd env set EVENTGRID_SYSTEM_TOPIC_NAME "$topic"
azd env set EVENTGRID_SUBSCRIPTION_ID "$subscription"
echo "postdeploy: $topic delivers Azure ML events to ${AZURE_FUNCTION_APP_NAME:-the function app} (mode ${DEPLOY_MODE:-plan})"
if [[ "${ALERT_EMAIL_SET:-false}" != "true" ]]; then
  echo "postdeploy: alerts fire in Azure Monitor but email nobody; set one with" \
    "'azd env set ALERT_EMAIL you@example.com && azd provision' (docs/deploy.md#alerts)"
fi
