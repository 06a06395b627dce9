/**
 * The credential for identity-based connections: the app's user-assigned managed identity in Azure (by client
 * id), or a developer's login. @azure/identity is loaded only when such a connection is used, so local runs with
 * connection strings never pay for it.
 */
import type { TokenCredential } from "@azure/core-auth";

export function azureCredential(clientId?: string): TokenCredential {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { DefaultAzureCredential } = require("@azure/identity") as typeof import("@azure/identity");
  return new DefaultAzureCredential(clientId ? { managedIdentityClientId: clientId } : {});
}
