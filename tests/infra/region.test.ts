/**
 * Everything is deployed to one EU region chosen by the `location` parameter, and nothing is replicated outside it.
 */
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { decoratorValue, get, literal, show } from "./bicep-reader";
import { EU_REGIONS, allFiles, everyResource, isRegistryModule, literalVars, main, moduleOf, modulePath, bicep, readRepoFile, rel } from "./infra";

/** Services that exist only as global resources; they keep data at rest where `dataLocation` says. */
const GLOBAL_TYPES = new Set([
  "microsoft.communication/communicationservices",
  "microsoft.communication/emailservices",
  "microsoft.communication/emailservices/domains",
]);

/** Tracked resource types: ARM requires a location, and it must be the chosen region (or global, above). */
const TRACKED_TYPES = new Set([
  "microsoft.resources/resourcegroups",
  "microsoft.storage/storageaccounts",
  "microsoft.documentdb/databaseaccounts",
  "microsoft.keyvault/vaults",
  "microsoft.web/serverfarms",
  "microsoft.web/sites",
  ...GLOBAL_TYPES,
]);

describe("region", () => {
  const allowed = () => {
    const v = literal(decoratorValue(main().params.get("location")?.decorators ?? [], "allowed"));
    if (!Array.isArray(v)) throw new Error("infra/main.bicep param location needs @allowed([...])");
    return v as string[];
  };

  it("allows EU regions only, West Europe (Amsterdam) first", () => {
    expect(allowed().filter((r) => !EU_REGIONS.has(r)), "regions outside the EU in @allowed of param location").toEqual([]);
    expect(allowed()[0]).toBe("westeurope");
    expect(main().params.get("location")?.default, "location has no default: azd asks, among the allowed ones").toBeUndefined();
  });

  it("takes the region from azd (AZURE_LOCATION)", () => {
    const parameters = JSON.parse(readRepoFile("infra/main.parameters.json")) as { parameters: Record<string, { value: unknown }> };
    expect(parameters.parameters.location?.value).toBe("${AZURE_LOCATION}");
  });

  it("puts every resource in the `location` parameter's region, or global for global-only services", () => {
    const wrong: string[] = [];
    for (const { file, resource } of everyResource()) {
      const loc = resource.body.entries.location;
      const type = resource.type.toLowerCase();
      const where = `${rel(file.path)} ${resource.symbol} (${resource.type})`;
      if (!loc) {
        if (TRACKED_TYPES.has(type)) wrong.push(`${where}: no location`);
        continue;
      }
      const ok = show(loc) === "location" || (GLOBAL_TYPES.has(type) && literal(loc) === "global");
      if (!ok) wrong.push(`${where}: location ${show(loc)}`);
    }
    expect(wrong).toEqual([]);
  });

  it("passes the same `location` to every module that takes one, and no local module defaults it", () => {
    const wrong: string[] = [];
    for (const file of allFiles()) {
      for (const m of file.modules) {
        const loc = m.params.location;
        if (loc && show(loc) !== "location") wrong.push(`${rel(file.path)} module ${m.symbol}: location ${show(loc)}`);
        if (isRegistryModule(m)) {
          // Registry modules default their location to the resource group's (which is `location` too); pass it anyway.
          if (!loc) wrong.push(`${rel(file.path)} module ${m.symbol}: pass location explicitly`);
          continue;
        }
        const target = bicep(modulePath(file, m));
        const declared = target.params.get("location");
        if (declared?.default) wrong.push(`${rel(target.path)}: param location has a default (${show(declared.default)})`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("keeps Cosmos DB in that single region", () => {
    const account = moduleOf("cosmos").resources.find((r) => r.type === "Microsoft.DocumentDB/databaseAccounts" && !r.existing)!;
    const locations = get(account.body, "properties.locations");
    expect(locations?.kind === "array" ? locations.items.map((l) => show(get(l, "locationName"))) : locations).toEqual(["location"]);
  });

  it("keeps storage replicas in that region (LRS or ZRS only, no geo pairing)", () => {
    for (const [file, name] of [
      [main(), "storageSkuName"],
      [moduleOf("storage"), "skuName"],
    ] as const) {
      const skus = literal(decoratorValue(file.params.get(name)?.decorators ?? [], "allowed"));
      expect(Array.isArray(skus), `${rel(file.path)} param ${name} needs @allowed([...])`).toBe(true);
      expect((skus as string[]).filter((s) => !/^(Standard|Premium)_(LRS|ZRS)$/.test(s)), `${rel(file.path)} ${name}`).toEqual([]);
    }
  });

  it("keeps Communication Services and Email data at rest in Europe", () => {
    const file = moduleOf("communication");
    const scope = literalVars(file);
    for (const r of file.resources.filter((x) => x.type.endsWith("communicationServices") || x.type.endsWith("emailServices"))) {
      const dl = get(r.body, "properties.dataLocation");
      expect(dl?.kind === "expr" ? scope[dl.text] : literal(dl), `${r.symbol} dataLocation`).toBe("Europe");
    }
  });
});
