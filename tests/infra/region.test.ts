/**
 * Everything is deployed to one EU region chosen by the `location` parameter, and nothing is replicated outside it:
 * checked on a deployment of the compiled template into every region the template allows.
 */
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { AZD_ENV, EU_REGIONS, allResources, at, azdParameters, azdUp, compiled, moduleOf, ofType, only } from "./compiled";

/** Services that exist only as global resources; they keep data at rest where `dataLocation` says. */
const GLOBAL_TYPES = new Set([
  "microsoft.communication/communicationservices",
  "microsoft.communication/emailservices",
  "microsoft.communication/emailservices/domains",
]);

/** Tracked resource types: ARM requires a location, and it must be the chosen region (or global, above). */
const TRACKED_TYPES = new Set([
  "microsoft.resources/resourcegroups",
  "microsoft.managedidentity/userassignedidentities",
  "microsoft.operationalinsights/workspaces",
  "microsoft.insights/components",
  "microsoft.storage/storageaccounts",
  "microsoft.documentdb/databaseaccounts",
  "microsoft.keyvault/vaults",
  "microsoft.web/serverfarms",
  "microsoft.web/sites",
  ...GLOBAL_TYPES,
]);

const allowedRegions = (): string[] => {
  const v = compiled().template.parameters?.location?.allowedValues;
  if (!Array.isArray(v)) throw new Error("infra/main.bicep param location needs @allowed([...])");
  return v as string[];
};

describe("region", () => {
  it("allows EU regions only, West Europe (Amsterdam) first, and has no default (azd asks)", () => {
    expect(allowedRegions().filter((r) => !EU_REGIONS.has(r)), "regions outside the EU in @allowed of param location").toEqual([]);
    expect(allowedRegions()[0]).toBe("westeurope");
    expect(compiled().template.parameters?.location?.defaultValue, "location has no default").toBeUndefined();
    expect(compiled().template.parameters?.location?.metadata?.azd, "azd prompts for it as a location").toEqual({ type: "location" });
  });

  it("refuses a region outside the list", () => {
    expect(() => azdUp({ location: "uksouth" })).toThrow(/parameter 'location' must be one of/);
  });

  it("takes the region from azd (AZURE_LOCATION)", () => {
    expect(azdParameters({ ...AZD_ENV, AZURE_LOCATION: "northeurope" }).location).toBe("northeurope");
  });

  it.each(allowedRegions())("puts every resource in %s when that region is chosen, or global for global-only services", (region) => {
    const d = azdUp({ location: region });
    const wrong: string[] = [];
    for (const r of allResources(d).filter((x) => x.deployed && x.type !== "Microsoft.Resources/deployments")) {
      const type = r.type.toLowerCase();
      const location = r.body.location;
      const where = `${r.deployment} ${r.type} ${r.name}`;
      if (location === undefined) {
        if (TRACKED_TYPES.has(type)) wrong.push(`${where}: no location`);
        continue;
      }
      const ok = GLOBAL_TYPES.has(type) ? location === "global" : location === region;
      if (!ok) wrong.push(`${where}: location ${JSON.stringify(location)}`);
    }
    expect(wrong).toEqual([]);
    const cosmos = only(ofType(d, "Microsoft.DocumentDB/databaseAccounts"), "Cosmos DB account");
    expect(at(cosmos.body, "properties.locations"), "Cosmos DB: this single region").toEqual([{ locationName: region, failoverPriority: 0, isZoneRedundant: false }]);
    expect(d.outputs.AZURE_LOCATION).toBe(region);
  });

  it("declares no default location in any module, so none can fall back to another region", () => {
    const defaults = [...azdUp().modules.values()].flatMap((m) => {
      const decl = m.template.parameters?.location;
      return decl?.defaultValue !== undefined ? [`${m.path}: ${JSON.stringify(decl.defaultValue)}`] : [];
    });
    expect(defaults).toEqual([]);
  });

  it("keeps storage replicas in that region (LRS or ZRS only, no geo pairing), for every SKU allowed", () => {
    const skus = compiled().template.parameters?.storageSkuName?.allowedValues as string[];
    expect(skus.filter((s) => !/^(Standard|Premium)_(LRS|ZRS)$/.test(s)), "main.bicep storageSkuName").toEqual([]);
    const moduleSkus = moduleOf(azdUp(), "storage").template.parameters?.skuName?.allowedValues as string[];
    expect(moduleSkus.filter((s) => !/^(Standard|Premium)_(LRS|ZRS)$/.test(s)), "storage.bicep skuName").toEqual([]);
    for (const sku of skus) {
      const account = only(ofType(azdUp({ storageSkuName: sku }), "Microsoft.Storage/storageAccounts"), "storage account");
      expect(at(account.body, "sku.name")).toBe(sku);
    }
    expect(at(only(ofType(azdUp(), "Microsoft.Storage/storageAccounts"), "storage account").body, "sku.name"), "default").toBe("Standard_ZRS");
  });

  it("keeps Communication Services and Email data at rest in Europe", () => {
    const d = azdUp({ emailCustomDomainName: "notify.example.eu", emailCustomDomainVerified: true });
    for (const type of ["Microsoft.Communication/communicationServices", "Microsoft.Communication/emailServices"]) {
      const r = only(ofType(d, type), type);
      expect(at(r.body, "properties.dataLocation"), `${type} dataLocation`).toBe("Europe");
    }
  });
});
