// Alerts on by default: an action group, and log alerts over the app's own Application Insights for
// function failures, rollouts that failed or rolled back, and a reconciler that stopped ticking. The
// dead-letter alert watches the Event Grid system topic, so it is deployed with it (deadletter-alert.bicep).
//
// The log alerts read the `traces` lines the app writes (docs/operations.md#alerts lists them). host.json keeps
// traces out of sampling, so a line the app wrote is a line the alert sees.

@description('Name prefix of the action group and the alert rules.')
param name string

param location string
param tags object

@description('ARM id of the app\'s Application Insights component; every log alert is scoped to it.')
param applicationInsightsId string

@description('Email address the action group notifies. Empty: the alerts still fire and show in Azure Monitor, but notify nobody.')
param alertEmail string = ''

@description('ARM id of an existing action group of yours (for example one that posts to Teams or Slack) that every alert notifies as well. Empty: none.')
param extraActionGroupId string = ''

@allowed([
  'PT15M'
  'PT30M'
  'PT1H'
  'PT2H'
  'PT6H'
])
@description('How long without a single reconciler tick line before the heartbeat alert fires (ISO 8601); keep it several times the RECONCILE_SCHEDULE interval.')
param reconcilerSilenceWindow string = 'PT15M'

var emailReceivers = empty(alertEmail) ? [] : [
  {
    name: 'operator'
    emailAddress: alertEmail
    useCommonAlertSchema: true
  }
]

// Action group short names are at most 12 characters (shown in SMS and email).
resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${name}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: take('aml-${name}', 12)
    enabled: true
    emailReceivers: emailReceivers
  }
}

var actionGroupIds = empty(extraActionGroupId) ? [actionGroup.id] : [actionGroup.id, extraActionGroupId]

// Failed invocations (the host answered 500; Event Grid redelivers), exceptions, and events the app acknowledged
// after a permanent failure (dispatch.py logs "... failed permanently, acknowledged: ...; event={...}").
var functionFailuresQuery = '''
union
  (requests | where success == false | project timestamp, what = strcat("failed invocation: ", operation_Name)),
  (exceptions | project timestamp, what = strcat("exception ", type, ": ", outerMessage)),
  (traces | where severityLevel >= 3 and message has "permanently, acknowledged" | project timestamp, what = message)
'''

// engine.py logs every transition as "rollout <endpoint>/<deployment> is now <state>: <reason>". Not anchored at the
// start of the line, so a prefix added by a log handler does not hide it; one alert per rollout.
var rolloutsFailedQuery = '''
traces
| where message matches regex @"rollout \S+/\S+ is now (failed|rolled_back): "
| extend rollout = extract(@"rollout (\S+/\S+) is now", 1, message), state = extract(@" is now (\w+): ", 1, message)
| project timestamp, rollout, state, message
'''

// reconcile.py logs one "reconcile: ..." line per tick, idle or not; no line for a while means no tick ran.
// contains_cs rather than startswith, for the same reason as above.
var reconcilerHeartbeatQuery = '''
traces
| where message contains_cs "reconcile: "
'''

resource functionFailures 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-function-failures-${name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'AML events app: function failures'
    description: 'An invocation failed, an exception was recorded, or an event was acknowledged after a permanent failure. See docs/operations.md#alerts.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: functionFailuresQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

resource rolloutsFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-rollouts-failed-${name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'AML events app: rollout failed or rolled back'
    description: 'A rollout ended failed or rolled_back; the alert names it. GET /api/rollouts?state=failed has the reason and the container logs.'
    severity: 2
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    criteria: {
      allOf: [
        {
          query: rolloutsFailedQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'rollout'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    // A failed rollout stays failed: one notification, no "resolved" message five minutes later.
    autoMitigate: false
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

resource reconcilerSilent 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-reconciler-silent-${name}'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'AML events app: reconciler not running'
    description: 'No reconciler tick was logged in the window: the app is stopped, the timer is not firing, or its logs no longer arrive.'
    severity: 1
    enabled: true
    scopes: [
      applicationInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: reconcilerSilenceWindow
    criteria: {
      allOf: [
        {
          query: reconcilerHeartbeatQuery
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

output actionGroupId string = actionGroup.id
output actionGroupIds array = actionGroupIds
