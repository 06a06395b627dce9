// safedata: everything `azd up` creates, in one EU region.
//
// Layout:
//   core/storage.bicep       storage account: host storage, deployment package, payload blobs, WORM audit anchors, queues,
//                            lifecycle backstop
//   core/cosmos.bicep        Cosmos DB for NoSQL: database and containers partitioned by /tenantId
//   core/key-vault.bicep     Key Vault (RBAC only) for tenants' key material and the admin API key
//   core/identity.bicep      the app's user-assigned managed identity
//   core/monitoring.bicep    Log Analytics workspace and Application Insights
//   core/communication.bicep Communication Services + Email: Azure-managed domain, optional custom domain, data in Europe
//   app/access.bicep         every role assignment, for the app identity and (optionally) the deploying user
//   app/function-app.bicep   Flex Consumption plan and the function app with its app settings
//
// No resource hands out a key: storage, Cosmos DB, Application Insights, Log Analytics and Communication Services have
// local (key) authentication turned off,
// and the app reaches every service with its user-assigned managed identity.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; names the resource group and seeds the unique suffix of every resource name.')
param environmentName string

// The product promises EU hosting. Only EU regions that offer Flex Consumption, availability zones (for ZRS
// storage) and Cosmos DB are allowed. West Europe (Amsterdam) first: it is the location the data-processing
// agreement names.
@minLength(1)
@description('EU region for every resource (Communication Services and Email are global services that keep their data in Europe).')
@allowed([
  'westeurope'
  'northeurope'
  'swedencentral'
  'germanywestcentral'
  'francecentral'
  'italynorth'
  'spaincentral'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the person (or pipeline) running azd. When set, it gets Key Vault Secrets Officer on the vault so the post-provision hook can create the admin API key and an operator can read it. Empty: no human access is granted.')
param principalId string = ''

@description('Cosmos DB capacity: serverless (pay per request, nothing at rest but storage) or provisioned autoscale throughput shared by the database. Fixed when the account is created.')
@allowed([
  'serverless'
  'autoscale'
])
param cosmosCapacityMode string = 'serverless'

@description('Autoscale ceiling in RU/s, shared by all containers; used only when cosmosCapacityMode is autoscale.')
@minValue(1000)
param cosmosAutoscaleMaxThroughput int = 1000

@description('Cosmos DB database name.')
param cosmosDatabaseName string = 'safedata'

@description('Storage redundancy. Both keep every copy inside the chosen region; geo-redundant options are not offered because some allowed regions have no EU pair.')
@allowed([
  'Standard_ZRS'
  'Standard_LRS'
])
param storageSkuName string = 'Standard_ZRS'

@description('Days each audit anchor (audit-chain head appended hourly to the audit-anchors blob container) stays write-once. Keep at least the 5-year evidence period (1826 days) in production; the default is 6 years. A test environment may use less.')
@minValue(1)
@maxValue(146000)
param auditAnchorsRetentionDays int = 2192

@description('Set to true once an operator has locked the audit-anchors retention policy (README, Deploy). A locked policy can no longer be updated by a deployment (only extended with az), so later deployments must leave it alone.')
param auditAnchorsPolicyLocked bool = false

@description('Flex Consumption: most instances the app may scale out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Flex Consumption: memory per instance in MB. Uploads stream, so 2048 is plenty.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Custom e-mail sender domain for breach notices and other mail (e.g. notify.example.eu). Azure-managed domains are for testing and start with low send quotas; production needs a verified custom domain. Empty: only the Azure-managed domain. See README, Deploy, "A custom e-mail domain".')
@maxLength(253)
param emailCustomDomainName string = ''

@description('Set to true once Azure has verified the DNS records of emailCustomDomainName: the domain is then linked and the app sends as DoNotReply@<that domain>. Until then it sends from the Azure-managed domain.')
param emailCustomDomainVerified bool = false

@description('Where the service e-mails the operator about breaches and deadlines (OPERATOR_CONTACT_EMAIL). Empty: only tenants are told.')
@maxLength(254)
param operatorContactEmail string = ''

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
// The post-provision hook (infra/scripts/ensure-admin-key.mjs) creates this secret; the function app reads it
// through a Key Vault reference.
var adminApiKeySecretName = 'admin-api-key'
var deploymentContainerName = 'app-package'

resource rg 'Microsoft.Resources/resourceGroups@2025-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

// The function app's only identity. Every role below is granted to it; no service holds a key for it.
module identity 'core/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-api-${resourceToken}'
    location: location
    tags: tags
  }
}

// Telemetry carries ids and counts only (never personal data). Local auth off: ingestion needs an Entra token
// (Monitoring Metrics Publisher, granted in app/access.bicep).
module monitoring 'core/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    workspaceName: 'log-${resourceToken}'
    appInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
    retentionInDays: 30
  }
}

module storage 'core/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    skuName: storageSkuName
    deploymentContainerName: deploymentContainerName
    auditAnchorsRetentionDays: auditAnchorsRetentionDays
    auditAnchorsPolicyLocked: auditAnchorsPolicyLocked
  }
}

module cosmos 'core/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    name: 'cosmos-${resourceToken}'
    location: location
    tags: tags
    databaseName: cosmosDatabaseName
    capacityMode: cosmosCapacityMode
    autoscaleMaxThroughput: cosmosAutoscaleMaxThroughput
  }
}

module keyVault 'core/key-vault.bicep' = {
  name: 'key-vault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
  }
}

module communication 'core/communication.bicep' = {
  name: 'communication'
  scope: rg
  params: {
    communicationServiceName: 'acs-${resourceToken}'
    emailServiceName: 'ecs-${resourceToken}'
    tags: tags
    customDomainName: emailCustomDomainName
    customDomainVerified: emailCustomDomainVerified
  }
}

module access 'app/access.bicep' = {
  name: 'access'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    deployerPrincipalId: principalId
    storageAccountName: storage.outputs.name
    cosmosAccountName: cosmos.outputs.accountName
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    communicationServiceName: communication.outputs.communicationServiceName
  }
}

module api 'app/function-app.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: 'func-api-${resourceToken}'
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    deploymentBlobContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainerName}'
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    blobServiceUri: storage.outputs.blobEndpoint
    queueServiceUri: storage.outputs.queueEndpoint
    cosmosAccountEndpoint: cosmos.outputs.endpoint
    cosmosDatabaseName: cosmos.outputs.databaseName
    keyVaultUri: keyVault.outputs.uri
    adminApiKeySecretName: adminApiKeySecretName
    acsEndpoint: communication.outputs.endpoint
    emailSenderAddress: communication.outputs.senderAddress
    operatorContactEmail: operatorContactEmail
    appInsightsConnectionString: monitoring.outputs.connectionString
  }
  // Roles first, so the app's first start can already read its storage, vault and database.
  dependsOn: [
    access
  ]
}

// Outputs become azd environment values (and environment variables of the hooks). None of them is a secret:
// the App Insights connection string is not printed here either, and the admin API key stays in Key Vault.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output ADMIN_API_KEY_SECRET_NAME string = adminApiKeySecretName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_COSMOS_ACCOUNT_NAME string = cosmos.outputs.accountName
output AZURE_COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_DATABASE_NAME string = cosmos.outputs.databaseName
output AZURE_COMMUNICATION_SERVICE_NAME string = communication.outputs.communicationServiceName
output AZURE_EMAIL_SERVICE_NAME string = communication.outputs.emailServiceName
output EMAIL_SENDER_ADDRESS string = communication.outputs.senderAddress
