// The function app on the Flex Consumption plan (Linux, Node 22) and its app settings.
//
// App settings are exactly what the code reads (shared/config/settings.ts, SETTING) plus the few the Functions host
// reads itself. tests/infra/settings-drift.test.ts fails when the two drift apart, so add a setting there and here
// in the same change. Every connection is identity-based: no connection string and no key appears here.

param name string
param planName string
param location string
param tags object

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity; the SDKs and the host pick it with this.')
param identityClientId string

@description('URL of the blob container the plan deploys the package from.')
param deploymentBlobContainerUrl string

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

param blobServiceUri string
param queueServiceUri string
param cosmosAccountEndpoint string
param cosmosDatabaseName string
param keyVaultUri string
param adminApiKeySecretName string
param acsEndpoint string
param emailSenderAddress string

@description('The operator\'s contact for breach and deadline alerts; may be empty.')
param operatorContactEmail string

@description('Application Insights connection string (an ingestion address, not a credential: local auth is off).')
param appInsightsConnectionString string

var appSettings = {
  // Host storage (timer locks, host keys), identity-based.
  AzureWebJobsStorage__blobServiceUri: blobServiceUri
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId

  // The app's storage: payload blobs and the queues (queue triggers use connection "SafeDataStorage").
  SafeDataStorage__blobServiceUri: blobServiceUri
  SafeDataStorage__queueServiceUri: queueServiceUri
  SafeDataStorage__credential: 'managedidentity'
  SafeDataStorage__clientId: identityClientId

  // Cosmos DB through Entra ID (local auth is off on the account).
  CosmosDb__accountEndpoint: cosmosAccountEndpoint
  CosmosDb__credential: 'managedidentity'
  CosmosDb__clientId: identityClientId
  COSMOS_DATABASE_NAME: cosmosDatabaseName

  // Tenants' key material lives in Key Vault secrets.
  KEY_PROVIDER: 'keyvault'
  KEY_VAULT_URI: keyVaultUri

  // E-mail through Azure Communication Services with the managed identity.
  EMAIL_PROVIDER: 'acs'
  ACS_ENDPOINT: acsEndpoint
  EMAIL_SENDER_ADDRESS: emailSenderAddress
  // Breach and deadline alerts for the operator (empty: only tenants are told).
  OPERATOR_CONTACT_EMAIL: operatorContactEmail

  // Resolved by the platform with the user-assigned identity (keyVaultReferenceIdentity below). Versionless, so a
  // rotated key is picked up on the next restart (or within a day).
  ADMIN_API_KEY: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/${adminApiKeySecretName}/)'

  // Which managed identity DefaultAzureCredential uses.
  AZURE_CLIENT_ID: identityClientId

  // Telemetry with Entra ID ingestion.
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD;ClientId=${identityClientId}'
}

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2025-03-01' = {
  name: name
  location: location
  // azd finds the service to deploy to by this tag.
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    clientAffinityEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentBlobContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'node'
        version: '22'
      }
    }
  }
}

resource settings 'Microsoft.Web/sites/config@2025-03-01' = {
  parent: site
  name: 'appsettings'
  properties: appSettings
}

// No FTP and no basic-auth publishing: azd deploys with Entra ID to the deployment container.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output uri string = 'https://${site.properties.defaultHostName}'
