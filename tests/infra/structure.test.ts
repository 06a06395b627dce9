/**
 * What `az bicep build` and `azd` would reject first, as far as reading the text can tell: module paths and
 * parameters, pinned registry modules, the parameters file, azure.yaml and its hooks, the outputs azd needs.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { literal, show } from "./bicep-reader";
import { REPO, allFiles, bicep, isRegistryModule, literalVars, main, moduleOf, modulePath, only, readRepoFile, rel, resourcesOfType } from "./infra";

describe("Bicep structure", () => {
  it("deploys at subscription scope (azd creates the resource group)", () => {
    expect(main().targetScope).toBe("subscription");
  });

  it("references only module files that exist", () => {
    const missing = allFiles().flatMap((f) =>
      f.modules.filter((m) => !isRegistryModule(m) && !existsSync(modulePath(f, m))).map((m) => `${rel(f.path)} module ${m.symbol} -> ${m.path}`),
    );
    expect(missing).toEqual([]);
  });

  it("passes each local module only parameters it declares, and every parameter it requires", () => {
    const problems: string[] = [];
    for (const f of allFiles()) {
      for (const m of f.modules.filter((x) => !isRegistryModule(x))) {
        if (!existsSync(modulePath(f, m))) continue;
        const target = bicep(modulePath(f, m));
        const passed = Object.keys(m.params);
        for (const p of passed) if (!target.params.has(p)) problems.push(`${rel(f.path)} module ${m.symbol} passes '${p}', not declared in ${rel(target.path)}`);
        for (const p of target.params.values()) {
          if (!p.default && !p.nullable && !passed.includes(p.name)) problems.push(`${rel(f.path)} module ${m.symbol} omits required '${p.name}' of ${rel(target.path)}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it("pins every registry module to an exact version", () => {
    const unpinned = allFiles().flatMap((f) =>
      f.modules.filter((m) => isRegistryModule(m) && !/^br\/public:avm\/res\/[a-z0-9-]+\/[a-z0-9-]+:\d+\.\d+\.\d+$/.test(m.path)).map((m) => `${rel(f.path)} ${m.path}`),
    );
    expect(unpinned).toEqual([]);
  });

  it("uses dated, non-preview API versions", () => {
    const bad = allFiles().flatMap((f) => f.resources.filter((r) => !/^\d{4}-\d{2}-\d{2}$/.test(r.apiVersion)).map((r) => `${rel(f.path)} ${r.symbol} @${r.apiVersion}`));
    expect(bad).toEqual([]);
  });

  it("declares child resources with `parent:` rather than nesting them (the reader sees top-level declarations only)", () => {
    expect(allFiles().filter((f) => f.nestedResourceDeclarations).map((f) => rel(f.path))).toEqual([]);
  });
});

describe("azd wiring", () => {
  const parameters = () => JSON.parse(readRepoFile("infra/main.parameters.json")) as { parameters: Record<string, { value: unknown }> };

  it("main.parameters.json feeds the environment name, region and deploying user from azd", () => {
    const p = parameters().parameters;
    expect(p.environmentName?.value).toBe("${AZURE_ENV_NAME}");
    expect(p.location?.value).toBe("${AZURE_LOCATION}");
    expect(p.principalId?.value).toBe("${AZURE_PRINCIPAL_ID}");
  });

  it("main.parameters.json names only parameters main.bicep declares, and gives every required one", () => {
    const given = Object.keys(parameters().parameters);
    expect(given.filter((n) => !main().params.has(n)), "unknown parameters").toEqual([]);
    const required = [...main().params.values()].filter((p) => !p.default && !p.nullable).map((p) => p.name);
    expect(required.filter((n) => !given.includes(n)), "required parameters without a value").toEqual([]);
  });

  it("outputs what azd and the operator need (and the hook reads)", () => {
    for (const name of [
      "AZURE_LOCATION",
      "AZURE_TENANT_ID",
      "AZURE_RESOURCE_GROUP",
      "AZURE_FUNCTION_APP_NAME",
      "SERVICE_API_URI",
      "AZURE_KEY_VAULT_NAME",
      "AZURE_KEY_VAULT_ENDPOINT",
      "ADMIN_API_KEY_SECRET_NAME",
    ]) {
      expect(main().outputs.has(name), `output ${name}`).toBe(true);
    }
    const hook = readRepoFile("infra/scripts/ensure-admin-key.mjs");
    for (const env of hook.match(/process\.env\.([A-Z_]+)/g) ?? []) {
      const name = env.replace("process.env.", "");
      expect(main().outputs.has(name), `the hook reads ${name}, which main.bicep must output`).toBe(true);
    }
  });

  it("azure.yaml describes the api service as a TypeScript function app built from the repository root", () => {
    const yaml = readRepoFile("azure.yaml");
    expect(yaml).toMatch(/^name: safedata$/m);
    expect(yaml).toMatch(/^services:\n {2}api:\n(?: {4}.*\n|\s*\n)*? {4}project: \.$/m);
    expect(yaml).toMatch(/^ {4}language: ts$/m);
    expect(yaml).toMatch(/^ {4}host: function$/m);
    // Local build: azd zips the staged folder as is (with remoteBuild false it keeps node_modules, and it reads the
    // .funcignore the stage script writes there); a remote build would reinstall dev dependencies and rebuild.
    expect(yaml).toMatch(/^ {4}remoteBuild: false$/m);
    expect(yaml).toMatch(/^ {4}dist: \.azure\/package\/api$/m);
    expect(readRepoFile("infra/scripts/stage-api-package.mjs")).toMatch(/writeFileSync\(\s*join\(out, "\.funcignore"\)/);
  });

  it("deploys to the function app azd finds by its azd-service-name tag", () => {
    const site = only(resourcesOfType(moduleOf("api"), "Microsoft.Web/sites"), "function app");
    expect(show(site.body.entries.tags)).toBe("union(tags, { 'azd-service-name': 'api' })");
  });

  it("runs hook scripts that exist", () => {
    const yaml = readRepoFile("azure.yaml");
    const scripts = [...yaml.matchAll(/run: node (\S+)/g)].map((m) => m[1]!);
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

  it("creates the deployment package container the function app deploys from", () => {
    const name = literalVars(main()).deploymentContainerName;
    expect(name).toBeDefined();
    expect(show(main().modules.find((m) => m.symbol === "storage")?.params.deploymentContainerName)).toBe("deploymentContainerName");
    expect(show(main().modules.find((m) => m.symbol === "api")?.params.deploymentBlobContainerUrl)).toBe(
      "'${storage.outputs.blobEndpoint}${deploymentContainerName}'",
    );
    const container = only(
      resourcesOfType(moduleOf("storage"), "Microsoft.Storage/storageAccounts/blobServices/containers").filter((r) => !r.loop),
      "deployment container",
    );
    expect(show(container.body.entries.name)).toBe("deploymentContainerName");
    expect(literal(container.body.entries.properties)).toEqual({ publicAccess: "None" });
  });
});
