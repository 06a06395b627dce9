// Key Vault for tenants' key material and the admin API key. Authorisation is Azure RBAC only (no access
// policies); purge protection and a 90-day soft delete mean a deleted key-encryption key can be recovered but
// never silently destroyed by a single mistaken call.
//
// Secrets kept here:
// - tenant-<id>-kek     the tenant's key-encryption key (versioned; the app creates and rotates it)
// - tenant-<id>-lookup  the tenant's HMAC secret for finding data subjects by e-mail
// - admin-api-key       created once by infra/scripts/ensure-admin-key.mjs (azd post-provision hook)

@description('Vault name (3-24 letters, digits and hyphens, globally unique).')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object

resource vault 'Microsoft.KeyVault/vaults@2025-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    accessPolicies: []
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
