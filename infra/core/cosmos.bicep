// Cosmos DB for NoSQL: one database, one container per record kind, all partitioned by /tenantId so every
// query names its tenant. Key (local) authentication is off: the app uses its managed identity and the
// data-plane role granted in app/access.bicep.
//
// Container names and TTLs must match COSMOS_CONTAINERS in shared/config/resources.ts (tests/infra compares them).

@description('Account name (3-44 lowercase letters, digits and hyphens).')
@minLength(3)
@maxLength(44)
param name string

param location string
param tags object
param databaseName string

@description('serverless: pay per request unit, single region. autoscale: provisioned throughput shared by the database.')
@allowed([
  'serverless'
  'autoscale'
])
param capacityMode string

@minValue(1000)
param autoscaleMaxThroughput int

// defaultTtl is a backstop only (the code's sweeps keep the promises). -1 turns TTL on with no default, so each
// item's own "ttl" decides; null leaves TTL off.
var containers = [
  {
    name: 'tenants'
    defaultTtl: null
  }
  {
    name: 'audit'
    defaultTtl: null
  }
  {
    name: 'uploads'
    defaultTtl: null
  }
  {
    name: 'idempotency'
    defaultTtl: -1
  }
  {
    name: 'operations'
    defaultTtl: null
  }
  {
    name: 'webhooks'
    defaultTtl: null
  }
  {
    name: 'subject-requests'
    defaultTtl: null
  }
  {
    name: 'breaches'
    defaultTtl: null
  }
  {
    // TTL on, per item: only the withdrawal links' rate counters carry a "ttl" (a backstop; everything else stays).
    name: 'consents'
    defaultTtl: -1
  }
]

var serverless = capacityMode == 'serverless'
var databaseOptions = serverless ? {} : { autoscaleSettings: { maxThroughput: autoscaleMaxThroughput } }

resource account 'Microsoft.DocumentDB/databaseAccounts@2025-04-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    // A single region: the data never leaves the chosen EU region.
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    capabilities: serverless ? [ { name: 'EnableServerless' } ] : []
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: 'Enabled'
    enableAutomaticFailover: false
    enableMultipleWriteLocations: false
    enableFreeTier: false
    // Continuous backup, shortest tier (7 days), against the erasure promise: an erased or purged record stays
    // restorable for at most 7 days, and only by an operator restoring the account into a new one. Payload
    // ciphertext is crypto-shredded (its data key is destroyed before the blob), and blob soft delete is off, so
    // a restored upload record points at a blob that no longer exists. Encrypted fields stay encrypted under the
    // tenant's key. A restore must replay the audit log's erasures and purges before it serves traffic.
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        tier: 'Continuous7Days'
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2025-04-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
    options: databaseOptions
  }
}

// Indexing: consistent, every path (the default). Queries filter on tenantId and a type or state field and sort
// on one field (seq, createdAt, due dates), which single-path range indexes serve. "_etag" is never queried.
resource sqlContainers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2025-04-15' = [
  for container in containers: {
    parent: database
    name: container.name
    properties: {
      resource: {
        id: container.name
        partitionKey: {
          paths: [
            '/tenantId'
          ]
          kind: 'Hash'
          version: 2
        }
        defaultTtl: container.defaultTtl
        indexingPolicy: {
          indexingMode: 'consistent'
          automatic: true
          includedPaths: [
            {
              path: '/*'
            }
          ]
          excludedPaths: [
            {
              path: '/"_etag"/?'
            }
          ]
        }
      }
    }
  }
]

output accountName string = account.name
output id string = account.id
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
