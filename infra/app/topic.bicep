// Optional Event Grid custom topic for rollout notifications: CloudEvents 1.0 in, Entra ID publishers only.

param name string
param location string
param tags object

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  // No role is granted to it here; it lets subscribers of this topic deliver and dead-letter with
  // Entra ID instead of keys or SAS.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    // No access keys: the app publishes with its identity (EventGrid Data Sender, see rbac.bicep).
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

output name string = topic.name
output id string = topic.id
output endpoint string = topic.properties.endpoint
