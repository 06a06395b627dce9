// Azure Communication Services Email. Both resources are global services ("global" is their only location);
// dataLocation keeps the data they store at rest in Europe.
//
// The app sends with its managed identity (role in app/access.bicep); the Communication Services resource has its
// access keys turned off, so no key can send mail on its behalf.
//
// Sender domains:
// - An Azure-managed domain (<guid>.azurecomm.net) is always created: verified by Azure, no DNS work, but meant for
//   testing, with low sending limits. Without a custom domain the app sends as DoNotReply@ that domain.
// - A custom domain (customDomainName) is for production breach notices. A deployment creates it unverified; an
//   operator publishes its DNS records and has Azure verify them (README, Deploy), then sets customDomainVerified.
//   Only a verified domain can be linked, so until then the app keeps sending from the managed domain.

param communicationServiceName string
param emailServiceName string
param tags object

@description('Custom sender domain (e.g. notify.example.eu); empty: the Azure-managed domain only.')
@maxLength(253)
param customDomainName string = ''

@description('True once Azure has verified the custom domain\'s DNS records: the domain is linked and the app sends from it.')
param customDomainVerified bool = false

var dataLocation = 'Europe'
var senderUsername = 'DoNotReply'
var hasCustomDomain = !empty(customDomainName)
var useCustomDomain = hasCustomDomain && customDomainVerified

resource emailService 'Microsoft.Communication/emailServices@2025-05-01' = {
  name: emailServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
  }
}

resource managedDomain 'Microsoft.Communication/emailServices/domains@2025-05-01' = {
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

resource customDomain 'Microsoft.Communication/emailServices/domains@2025-05-01' = if (hasCustomDomain) {
  parent: emailService
  name: hasCustomDomain ? customDomainName : 'unused'
  location: 'global'
  tags: tags
  properties: {
    domainManagement: 'CustomerManaged'
    userEngagementTracking: 'Disabled'
  }
}

// The sender the app uses on the custom domain (the managed domain has it built in).
resource customDomainSender 'Microsoft.Communication/emailServices/domains/senderUsernames@2025-05-01' = if (hasCustomDomain) {
  parent: customDomain
  name: toLower(senderUsername)
  properties: {
    username: senderUsername
    displayName: senderUsername
  }
}

resource communicationService 'Microsoft.Communication/communicationServices@2025-05-01' = {
  name: communicationServiceName
  location: 'global'
  tags: tags
  properties: {
    dataLocation: dataLocation
    // Entra ID only: the access keys cannot be used.
    disableLocalAuth: true
    linkedDomains: useCustomDomain ? [managedDomain.id, customDomain.id] : [managedDomain.id]
  }
}

output communicationServiceName string = communicationService.name
output emailServiceName string = emailService.name
output endpoint string = 'https://${communicationService.properties.hostName}'
output senderAddress string = '${senderUsername}@${useCustomDomain ? customDomainName : managedDomain.properties.mailFromSenderDomain}'
