/**
 * What Azure returns for the runtime properties the templates read (`reference(...)`: endpoints, host names,
 * identity ids, the managed e-mail domain). The shapes follow what Azure returns for each resource type; the ids in
 * them are derived from the resource id, so the same deployment always gets the same values and two resources never
 * share one. A property that is not modelled here throws where the template reads it: add it here, in Azure's
 * shape, rather than guess in a test.
 */
import { createHash } from "node:crypto";
import type { Json, JsonObject } from "./arm";

export const SUBSCRIPTION_ID = "3f2b8c1e-5d4a-4b7e-9c6f-1a2b3c4d5e6f";
export const TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47";

/** A deterministic UUID (version 5 layout) from a seed. */
export function uuidFrom(seed: string): string {
  const h = createHash("sha256").update(seed).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h.slice(16, 18), 16) & 0x3f) | 0x80).toString(16)}${h.slice(18, 20)}-${h.slice(20, 32)}`;
}

export interface ModelledResource {
  readonly type: string;
  readonly id: string;
  /** Full name, child segments separated by '/'. */
  readonly name: string;
  readonly location?: Json;
  /** The properties the template declared, evaluated. */
  readonly properties: JsonObject;
}

const last = (name: string): string => name.split("/").pop() ?? name;

/** Runtime (read-only) properties Azure adds to a resource of this type, merged over the declared ones. */
export function runtimeProperties(r: ModelledResource): JsonObject {
  const type = r.type.toLowerCase();
  const name = last(r.name);
  switch (type) {
    case "microsoft.managedidentity/userassignedidentities":
      return { principalId: uuidFrom(`${r.id}#principal`), clientId: uuidFrom(`${r.id}#client`), tenantId: TENANT_ID };
    case "microsoft.storage/storageaccounts": {
      const endpoint = (service: string): string => `https://${name}.${service}.core.windows.net/`;
      return {
        primaryEndpoints: {
          blob: endpoint("blob"),
          queue: endpoint("queue"),
          table: endpoint("table"),
          file: endpoint("file"),
          dfs: endpoint("dfs"),
          web: `https://${name}.z6.web.core.windows.net/`,
        },
      };
    }
    case "microsoft.documentdb/databaseaccounts":
      return { documentEndpoint: `https://${name}.documents.azure.com:443/` };
    case "microsoft.keyvault/vaults":
      return { vaultUri: `https://${name}.vault.azure.net/` };
    case "microsoft.communication/communicationservices": {
      // The host name carries the data location's geography (europe, unitedstates, ...).
      const geography = String(r.properties.dataLocation ?? "").toLowerCase().replace(/\s+/g, "");
      return { hostName: `${name}.${geography}.communication.azure.com`, immutableResourceId: uuidFrom(r.id) };
    }
    case "microsoft.communication/emailservices/domains": {
      const domain = r.properties.domainManagement === "AzureManaged" ? `${uuidFrom(r.id)}.azurecomm.net` : name;
      return { mailFromSenderDomain: domain, fromSenderDomain: domain };
    }
    case "microsoft.insights/components": {
      const key = uuidFrom(`${r.id}#ikey`);
      const appId = uuidFrom(`${r.id}#app`);
      const region = String(r.location ?? "");
      return {
        InstrumentationKey: key,
        AppId: appId,
        ConnectionString:
          `InstrumentationKey=${key};IngestionEndpoint=https://${region}-5.in.applicationinsights.azure.com/;` +
          `LiveEndpoint=https://${region}.livediagnostics.monitor.azure.com/;ApplicationId=${appId}`,
      };
    }
    case "microsoft.operationalinsights/workspaces":
      return { customerId: uuidFrom(`${r.id}#workspace`) };
    case "microsoft.web/sites":
      return { defaultHostName: `${name}.azurewebsites.net` };
    default:
      return {};
  }
}
