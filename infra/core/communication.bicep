// Azure Communication Services Email with an Azure-managed sender domain. Both resources are global services
// ("global" is their only location); dataLocation keeps the data they store at rest in Europe.
//
// The app sends as DoNotReply@<managed domain> with its managed identity (role in app/access.bicep). The
// resource still has access keys (this API version cannot turn them off); nothing reads or distributes them.

param communicationServiceName string
param emailServiceName string
param tags object

var dataLocation = 'Europe'

resource emailService 'Microsoft.Communication/emailServices@2023-04-01' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

// Azure-managed domain: <guid>.azurecomm.net, verified by Azure, no DNS work. It has low sending limits; move to a
// custom domain before real volume.
resource managedDomain 'Microsoft.Communication/emailServices/domains@2023-04-01' = {
  parent: emailService
  name: 'AzureManagedDomain'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'AzureManaged'
    // No tracking pixels or rewritten links in breach notices.
    userEngagementTracking: 'Disabled'
  }
}

resource communicationService 'Microsoft.Communication/communicationServices@2023-04-01' = {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    linkedDomains: [
      managedDomain.id
    ]
  }
}

output communicationServiceName string = communicationService.name
output endpoint string = 'https://${communicationService.properties.hostName}'
// An Azure-managed domain always has the DoNotReply sender.
output senderAddress string = 'DoNotReply@${managedDomain.properties.mailFromSenderDomain}'
