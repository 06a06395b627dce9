// One storage account for the Functions host (AzureWebJobsStorage), the deployment package, the encrypted
// payloads and the work queues. Shared-key access is off: every caller authenticates with Entra ID.
//
// Names below must match shared/config/resources.ts (tests/infra compares them).

@description('Storage account name (3-24 lowercase letters and digits).')
@minLength(3)
@maxLength(24)
param name string

param location string
param tags object

@description('Standard_ZRS or Standard_LRS: every copy stays in the chosen region.')
@allowed([
  'Standard_ZRS'
  'Standard_LRS'
])
param skuName string

@description('Blob container the Flex Consumption plan deploys the app package from.')
param deploymentContainerName string

@description('Write-once retention of the audit-anchors container, in days since each blob was created. At least the 5-year evidence period (1826 days) in production; the default is 6 years.')
@minValue(1)
@maxValue(146000)
param auditAnchorsRetentionDays int = 2192

@description('True once the audit-anchors policy is locked: a locked policy cannot be created or updated by a deployment any more, so it is left out.')
param auditAnchorsPolicyLocked bool = false

// BLOB_CONTAINERS in shared/config/resources.ts. The local-only "email-outbox" is deliberately absent.
var payloadContainerName = 'payloads'
var auditAnchorsContainerName = 'audit-anchors'
// Consent evidence files, kept for years (the consent-evidence retention class): no lifecycle rule touches them.
var consentEvidenceContainerName = 'consent-evidence'
var blobContainerNames = [
  payloadContainerName
  auditAnchorsContainerName
  consentEvidenceContainerName
]

// QUEUES in shared/config/resources.ts, each with the "-poison" twin the Functions host moves failed messages to.
var queueNames = [
  'purge-batches'
  'purge-batches-poison'
  'key-rewrap'
  'key-rewrap-poison'
  'notifications'
  'notifications-poison'
  'webhook-deliveries'
  'webhook-deliveries-poison'
  'deadline-notices'
  'deadline-notices-poison'
  'subject-request-steps'
  'subject-request-steps-poison'
  'breach-jobs'
  'breach-jobs-poison'
]

resource account 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    // Encryption at rest with Microsoft-managed keys (AES-256) is always on; payloads are also encrypted by the app.
  }
}

// Soft delete against the 32-day promise:
// - Blob soft delete and versioning are OFF. A purge or erasure destroys the payload's data key first, so a
//   soft-deleted or older version of the blob could never be decrypted again; keeping it would only keep
//   ciphertext beyond day 32 and would let no one recover anything.
// - Container soft delete is ON for 7 days. It only matters if a whole container is deleted by mistake; the
//   payloads in it stay ciphertext whose data keys the purge still destroys on schedule.
// - The audit-anchors container's write-once policy (below) is container-level WORM, which needs neither blob
//   versioning nor soft delete.
resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2025-01-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: false
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    isVersioningEnabled: false
    changeFeed: {
      enabled: false
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' = [
  for containerName in blobContainerNames: {
    parent: blobService
    name: containerName
    properties: {
      publicAccess: 'None'
    }
  }
]

// Tamper evidence outside Cosmos DB: once an hour the app appends each tenant's audit-chain head (sequence number
// and SHA-256 hash, no personal data) to the append blob audit-anchors/<tenantId>/<yyyy-mm>.jsonl. Someone with
// Cosmos DB write access who deletes the newest audit entries and rewinds the chain head is caught, because an
// anchor here says entry N with hash H existed. The container itself is created by the loop above, like every
// container in BLOB_CONTAINERS; this reference only names it as the parent of its retention policy.
resource auditAnchorsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2025-01-01' existing = {
  parent: blobService
  name: auditAnchorsContainerName
}

// Container-level WORM: no blob in audit-anchors can be overwritten or deleted until it is
// auditAnchorsRetentionDays old. allowProtectedAppendWrites lets the app keep appending blocks to its append blobs;
// existing blocks can never be changed or removed. (Not allowProtectedAppendWritesAll: block blobs stay immutable.)
//
// Bicep creates the policy UNLOCKED (locking is a POST action, not a property). While unlocked it already protects
// the blobs, but an administrator could shorten or delete the policy. In production an operator locks it once,
// after the first deployment:
//   etag=$(az storage container immutability-policy show --resource-group <rg> --account-name <account> \
//     --container-name audit-anchors --query etag --output tsv)
//   az storage container immutability-policy lock --resource-group <rg> --account-name <account> \
//     --container-name audit-anchors --if-match "$etag"
// Locking cannot be undone: afterwards the period can only be extended (az storage container immutability-policy
// extend), and neither the container nor the storage account can be deleted while any blob in it is under
// retention, so `azd down` fails for this account. That is intended for production. Leave test environments
// unlocked; before `azd down` there, remove the unlocked policy with
// `az storage container immutability-policy delete ... --container-name audit-anchors --if-match "$etag"`.
// A locked policy only accepts "extend": a deployment that puts it again fails. After locking, the operator sets
// auditAnchorsPolicyLocked to true in main.parameters.json, and later deployments leave the policy alone.
resource auditAnchorsImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2025-01-01' = if (!auditAnchorsPolicyLocked) {
  parent: auditAnchorsContainer
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditAnchorsRetentionDays
    allowProtectedAppendWrites: true
  }
  // The `existing` reference above does not wait for the loop that creates the container; this does.
  dependsOn: [
    blobContainers
  ]
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2025-01-01' = {
  parent: account
  name: 'default'
}

resource queues 'Microsoft.Storage/storageAccounts/queueServices/queues@2025-01-01' = [
  for queueName in queueNames: {
    parent: queueService
    name: queueName
  }
]

// Backstop for the 32-day purge: the purge timer deletes payloads after 32 days (and records it in the audit
// log); whatever it missed, Storage deletes one day later. Lifecycle management runs about once a day, so a
// blob can outlive this by up to a day more; by then the purge has already destroyed its data key.
// The rule is filtered to the payloads/ prefix and must stay so: it must never touch audit-anchors (WORM, above).
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2025-01-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-payloads-33-days-after-creation'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
                'appendBlob'
              ]
              prefixMatch: [
                '${payloadContainerName}/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterCreationGreaterThan: 33
                }
              }
              snapshot: {
                delete: {
                  daysAfterCreationGreaterThan: 33
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    blobContainers
  ]
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
