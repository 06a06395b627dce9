// The function app's only identity: a user-assigned managed identity. Every role in app/access.bicep is granted to
// it, and every connection the app opens (storage, Cosmos DB, Key Vault, Communication Services, Application
// Insights ingestion) authenticates as it. No service hands the app a key.

@description('Identity name (3-128 letters, digits, hyphens and underscores).')
@minLength(3)
@maxLength(128)
param name string

param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2024-11-30' = {
  name: name
  location: location
  tags: tags
}

output name string = identity.name
output resourceId string = identity.id
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
