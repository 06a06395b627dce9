// Log Analytics and a workspace-based Application Insights for the function app's telemetry. Telemetry carries ids
// and counts only, never personal data; on top of that, client IP addresses are masked (Application Insights keeps
// only 0.0.0.0 and the derived country), and data is kept 30 days.
//
// Local (key) authentication is off on both: the app ingests with an Entra token of its managed identity
// (Monitoring Metrics Publisher on the component, granted in app/access.bicep). The connection string that the app
// gets is an ingestion address, not a credential.

@description('Log Analytics workspace name (4-63 letters, digits and hyphens).')
@minLength(4)
@maxLength(63)
param workspaceName string

@description('Application Insights component name.')
@minLength(1)
@maxLength(255)
param appInsightsName string

param location string
param tags object

@description('Days telemetry is kept (30 to 730).')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      // No workspace keys: nothing here sends data with a shared key (agents, the HTTP Data Collector API).
      disableLocalAuth: true
      // Access to the telemetry follows the permissions on the Application Insights resource it came from.
      enableLogAccessUsingOnlyResourcePermissions: true
    }
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    // Ingestion only with an Entra token.
    DisableLocalAuth: true
    // Keep masking client IP addresses (the platform's default, stated so no module default can turn it off).
    DisableIpMasking: false
    RetentionInDays: retentionInDays
    publicNetworkAccessForIngestion: 'Enabled'
    publicNetworkAccessForQuery: 'Enabled'
  }
}

output workspaceId string = workspace.id
output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
output connectionString string = appInsights.properties.ConnectionString
