/**
 * The shape of the compiled deployment and how azd drives it: subscription scope, only local modules (no registry
 * module, no telemetry deployment), stable API versions, dependencies, names Azure accepts, the parameters file,
 * azure.yaml and its hooks, and the outputs azd and the hooks need.
 */
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { AZD_ENV, REPO, allResources, at, azdParameters, azdUp, compiled, moduleOf, ofType, only, readRepoFile, type Deployment } from "./compiled";

/** The modules main.bicep deploys, by deployment name. */
const MODULES = ["identity", "monitoring", "storage", "cosmos", "key-vault", "communication", "access", "api"];

/** Azure's naming rules for the resources whose names are built from the environment name and a unique token. */
const NAME_RULES: Record<string, RegExp> = {
  "Microsoft.Resources/resourceGroups": /^[-\w.()]{1,89}[-\w()]$/,
  "Microsoft.Storage/storageAccounts": /^[a-z0-9]{3,24}$/,
  "Microsoft.KeyVault/vaults": /^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$/,
  "Microsoft.DocumentDB/databaseAccounts": /^[a-z0-9][a-z0-9-]{1,42}[a-z0-9]$/,
  "Microsoft.Web/sites": /^[a-zA-Z0-9][a-zA-Z0-9-]{0,58}[a-zA-Z0-9]$/,
  "Microsoft.Web/serverfarms": /^[a-zA-Z0-9-]{1,60}$/,
  "Microsoft.ManagedIdentity/userAssignedIdentities": /^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$/,
  "Microsoft.OperationalInsights/workspaces": /^[a-zA-Z0-9][a-zA-Z0-9-]{2,61}[a-zA-Z0-9]$/,
  "Microsoft.Insights/components": /^[^%&\\?/]{1,255}$/,
  "Microsoft.Communication/communicationServices": /^[a-zA-Z0-9-]{1,63}$/,
  "Microsoft.Communication/emailServices": /^[a-zA-Z0-9-]{1,63}$/,
};

describe("compiled deployment", () => {
  it("deploys at subscription scope (azd creates the resource group) into one resource group", () => {
    expect(compiled().template.$schema).toMatch(/\/subscriptionDeploymentTemplate\.json#$/);
    const d = azdUp();
    const group = only(ofType(d, "Microsoft.Resources/resourceGroups"), "resource group");
    expect(group.name).toBe(`rg-${AZD_ENV.AZURE_ENV_NAME!}`);
    expect(d.outputs.AZURE_RESOURCE_GROUP).toBe(group.name);
    for (const m of d.modules.values()) expect(m.resourceGroup, m.path).toBe(group.name);
  });

  it("deploys the local modules only: no registry module and no telemetry deployment", () => {
    const d = azdUp();
    expect([...d.modules.keys()].sort()).toEqual([...MODULES].sort());
    const nested = ofType(d, "Microsoft.Resources/deployments").filter((r) => r.deployment !== "main");
    expect(nested.map((r) => `${r.deployment} ${r.name}`), "deployments inside modules").toEqual([]);
    const registryModules = readBicepSources().filter(({ text }) => /^\s*module\s+\w+\s+'(br|ts)[:/]/m.test(text));
    expect(registryModules.map((f) => f.path), "Bicep files using a registry module").toEqual([]);
  });

  it("uses dated, non-preview API versions everywhere", () => {
    const bad = allResources(azdUp())
      .filter((r) => !/^\d{4}-\d{2}-\d{2}$/.test(r.apiVersion))
      .map((r) => `${r.deployment} ${r.type}@${r.apiVersion}`);
    expect(bad).toEqual([]);
  });

  it("creates the role assignments before the function app, so its first start can already reach its resources", () => {
    const d = azdUp();
    const access = only(d.resources.filter((r) => r.name === "access"), "access module");
    expect(only(d.resources.filter((r) => r.name === "api"), "api module").dependsOn).toContain(access.id);
  });

  it.each([
    ["a short environment name", "dev"],
    ["the longest environment name azd allows here (64 characters)", "e".repeat(64)],
  ])("gives every resource a name Azure accepts, with %s", (_, environmentName) => {
    const d = azdUp({ environmentName });
    const wrong = Object.entries(NAME_RULES).flatMap(([type, rule]) =>
      ofType(d, type)
        .filter((r) => !rule.test(r.name))
        .map((r) => `${type} '${r.name}'`),
    );
    expect(wrong).toEqual([]);
    expect(() => azdUp({ environmentName: "e".repeat(65) }), "longer environment names are refused").toThrow(/maxLength 64/);
  });

  it("gives resources of one environment names no other environment or subscription shares", () => {
    const storageName = (d: Deployment) => only(ofType(d, "Microsoft.Storage/storageAccounts"), "storage").name;
    expect(storageName(azdUp({ environmentName: "a" }))).not.toBe(storageName(azdUp({ environmentName: "b" })));
    expect(storageName(azdUp())).toBe(storageName(azdUp({})));
  });

  it("tags every tracked resource with the azd environment, and the function app with its azd service name", () => {
    const d = azdUp();
    const untagged = allResources(d)
      .filter((r) => r.deployed && r.body.location !== undefined && at(r.body, "tags.azd-env-name") !== AZD_ENV.AZURE_ENV_NAME)
      .map((r) => `${r.type} ${r.name}`);
    expect(untagged).toEqual([]);
    expect(at(only(ofType(d, "Microsoft.Web/sites"), "app").body, "tags.azd-service-name")).toBe("api");
  });
});

describe("azd wiring", () => {
  it("main.parameters.json feeds the environment name, region and deploying user from azd", () => {
    const p = azdParameters();
    expect(p.environmentName).toBe(AZD_ENV.AZURE_ENV_NAME);
    expect(p.location).toBe(AZD_ENV.AZURE_LOCATION);
    expect(p.principalId).toBe(AZD_ENV.AZURE_PRINCIPAL_ID);
  });

  it("main.parameters.json names only parameters the template declares, and gives every required one", () => {
    const declared = compiled().template.parameters ?? {};
    const given = Object.keys(azdParameters());
    expect(given.filter((n) => !(n in declared)), "unknown parameters").toEqual([]);
    const required = Object.entries(declared)
      .filter(([, p]) => p.defaultValue === undefined)
      .map(([n]) => n);
    expect(required.filter((n) => !given.includes(n)), "required parameters without a value").toEqual([]);
  });

  it("outputs what azd and the operator need (and the hook reads), with the deployment's real values", () => {
    const d = azdUp();
    const app = only(ofType(d, "Microsoft.Web/sites"), "function app");
    const vault = only(ofType(d, "Microsoft.KeyVault/vaults"), "key vault");
    expect(d.outputs).toMatchObject({
      AZURE_LOCATION: AZD_ENV.AZURE_LOCATION,
      AZURE_FUNCTION_APP_NAME: app.name,
      SERVICE_API_NAME: app.name,
      SERVICE_API_URI: `https://${app.name}.azurewebsites.net`,
      AZURE_KEY_VAULT_NAME: vault.name,
      AZURE_KEY_VAULT_ENDPOINT: `https://${vault.name}.vault.azure.net/`,
      AZURE_STORAGE_ACCOUNT_NAME: only(ofType(d, "Microsoft.Storage/storageAccounts"), "storage").name,
      AZURE_COSMOS_ACCOUNT_NAME: only(ofType(d, "Microsoft.DocumentDB/databaseAccounts"), "cosmos").name,
      AZURE_COMMUNICATION_SERVICE_NAME: only(ofType(d, "Microsoft.Communication/communicationServices"), "acs").name,
      AZURE_EMAIL_SERVICE_NAME: only(ofType(d, "Microsoft.Communication/emailServices"), "email service").name,
    });
    expect(typeof d.outputs.AZURE_TENANT_ID).toBe("string");
    const hook = readRepoFile("infra/scripts/ensure-admin-key.mjs");
    for (const env of hook.match(/process\.env\.([A-Z_]+)/g) ?? []) {
      const name = env.replace("process.env.", "");
      expect(name in d.outputs, `the hook reads ${name}, which main.bicep must output`).toBe(true);
    }
  });

  it("azure.yaml describes the api service as a TypeScript function app built from the repository root", () => {
    const yaml = readRepoFile("azure.yaml");
    expect(yaml).toMatch(/^name: safedata$/m);
    expect(yaml).toMatch(/^infra:\n {2}provider: bicep\n {2}path: infra\n {2}module: main$/m);
    expect(yaml).toMatch(/^services:\n {2}api:\n(?: {4}.*\n|\s*\n)*? {4}project: \.$/m);
    expect(yaml).toMatch(/^ {4}language: ts$/m);
    expect(yaml).toMatch(/^ {4}host: function$/m);
    // Local build: azd zips the staged folder as is (with remoteBuild false it keeps node_modules, and it reads the
    // .funcignore the stage script writes there); a remote build would reinstall dev dependencies and rebuild.
    expect(yaml).toMatch(/^ {4}remoteBuild: false$/m);
    expect(yaml).toMatch(/^ {4}dist: \.azure\/package\/api$/m);
    expect(readRepoFile("infra/scripts/stage-api-package.mjs")).toMatch(/writeFileSync\(\s*join\(out, "\.funcignore"\)/);
  });

  it("runs hook scripts that exist", () => {
    const scripts = [...readRepoFile("azure.yaml").matchAll(/run: node (\S+)/g)].map((m) => m[1]!);
    expect(scripts.length).toBeGreaterThanOrEqual(2);
    expect(scripts.filter((s) => !existsSync(join(REPO, s)))).toEqual([]);
  });

  it("stages a package whose entry point (package.json main) is among the compiled folders it copies", () => {
    const mainEntry = (JSON.parse(readRepoFile("package.json")) as { main: string }).main;
    const folder = /^dist\/([^/]+)\//.exec(mainEntry)?.[1];
    const script = readRepoFile("infra/scripts/stage-api-package.mjs");
    const copied = /const compiledFolders = \[([^\]]*)\]/.exec(script)?.[1] ?? "";
    expect(folder, `package.json main (${mainEntry}) must be under dist/`).toBeDefined();
    expect(copied, `infra/scripts/stage-api-package.mjs compiledFolders must include "${folder}"`).toContain(`"${folder}"`);
    const dist = /^ {4}dist: (\S+)$/m.exec(readRepoFile("azure.yaml"))?.[1];
    expect(script, "the stage script writes where azure.yaml's dist points").toContain(
      `join(root, ${dist!.split("/").map((s) => `"${s}"`).join(", ")})`,
    );
  });

  it("stages the files the app reads at run time from the package root (the e-mail templates)", () => {
    const script = readRepoFile("infra/scripts/stage-api-package.mjs");
    const copied = /const runtimeFolders = \[([^\]]*)\]/.exec(script)?.[1] ?? "";
    expect(copied, "infra/scripts/stage-api-package.mjs runtimeFolders must include the templates").toContain('"templates"');
    expect(existsSync(join(REPO, "templates", "email"))).toBe(true);
  });

  it("deploys the app package from a private container of the app's storage account, created before the app", () => {
    const d = azdUp();
    const url = String(at(only(ofType(d, "Microsoft.Web/sites"), "app").body, "properties.functionAppConfig.deployment.storage.value"));
    const account = only(ofType(d, "Microsoft.Storage/storageAccounts"), "storage").name;
    const m = new RegExp(`^https://${account}\\.blob\\.core\\.windows\\.net/([a-z0-9-]+)$`).exec(url);
    expect(m, `deployment container URL ${url}`).not.toBeNull();
    const container = only(
      ofType(d, "Microsoft.Storage/storageAccounts/blobServices/containers").filter((c) => c.name === `${account}/default/${m![1]}`),
      "deployment container",
    );
    expect(at(container.body, "properties.publicAccess")).toBe("None");
    expect(only(d.resources.filter((r) => r.name === "api"), "api").dependsOn).toContain(moduleOf(d, "storage").id);
  });
});

/** Every .bicep file under infra/, with its text. */
function readBicepSources(): { path: string; text: string }[] {
  return readdirSync(join(REPO, "infra"), { recursive: true })
    .map(String)
    .filter((p) => p.endsWith(".bicep"))
    .map((p) => ({ path: `infra/${p}`, text: readRepoFile(`infra/${p}`) }));
}
