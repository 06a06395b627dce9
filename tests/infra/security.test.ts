/**
 * The security properties the deployment promises: no shared keys, local auth off, TLS 1.2, HTTPS only, no FTP,
 * RBAC-only Key Vault with purge protection, no keys anywhere in the templates, and role assignments that are
 * idempotent and no wider than the app needs.
 */
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { get, literal, show, type BicepValue, type ResourceDecl } from "./bicep-reader";
import { allFiles, everyResource, main, moduleOf, only, rel, resourcesOfType } from "./infra";

/** Collects "path: expected X, found Y" for each property that differs, so one run shows every drift. */
function mismatches(resource: ResourceDecl, where: string, expected: Record<string, unknown>): string[] {
  return Object.entries(expected)
    .filter(([path, want]) => JSON.stringify(literal(get(resource.body, path))) !== JSON.stringify(want))
    .map(([path, want]) => `${where} ${path}: expected ${JSON.stringify(want)}, found ${show(get(resource.body, path))}`);
}

describe("security properties", () => {
  it("storage: no shared keys, no public blobs, TLS 1.2, HTTPS only", () => {
    const account = only(resourcesOfType(moduleOf("storage"), "Microsoft.Storage/storageAccounts"), "storage account");
    expect(
      mismatches(account, "storage account", {
        "properties.allowSharedKeyAccess": false,
        "properties.allowBlobPublicAccess": false,
        "properties.minimumTlsVersion": "TLS1_2",
        "properties.supportsHttpsTrafficOnly": true,
        "properties.defaultToOAuthAuthentication": true,
        "properties.allowCrossTenantReplication": false,
      }),
    ).toEqual([]);
  });

  it("Cosmos DB: local (key) auth off, TLS 1.2", () => {
    const account = only(resourcesOfType(moduleOf("cosmos"), "Microsoft.DocumentDB/databaseAccounts"), "Cosmos DB account");
    expect(
      mismatches(account, "Cosmos DB account", {
        "properties.disableLocalAuth": true,
        "properties.disableKeyBasedMetadataWriteAccess": true,
        "properties.minimalTlsVersion": "Tls12",
      }),
    ).toEqual([]);
  });

  it("Application Insights: local auth off (ingestion needs an Entra token)", () => {
    const ai = main().modules.find((m) => m.symbol === "appInsights");
    expect(ai?.path).toMatch(/^br\/public:avm\/res\/insights\/component:/);
    expect(literal(ai?.params.disableLocalAuth), "appInsights disableLocalAuth").toBe(true);
  });

  it("Key Vault: RBAC only, purge protection, 90-day soft delete, no access policies", () => {
    const vault = only(resourcesOfType(moduleOf("keyVault"), "Microsoft.KeyVault/vaults"), "key vault");
    expect(
      mismatches(vault, "key vault", {
        "properties.enableRbacAuthorization": true,
        "properties.enablePurgeProtection": true,
        "properties.enableSoftDelete": true,
        "properties.softDeleteRetentionInDays": 90,
        "properties.accessPolicies": [],
      }),
    ).toEqual([]);
  });

  it("function app: HTTPS only, TLS 1.2, FTP and basic-auth publishing off, user-assigned identity, Flex Consumption, Node 22", () => {
    const api = moduleOf("api");
    const site = only(resourcesOfType(api, "Microsoft.Web/sites"), "function app");
    expect(
      mismatches(site, "function app", {
        kind: "functionapp,linux",
        "properties.httpsOnly": true,
        "properties.siteConfig.minTlsVersion": "1.2",
        "properties.siteConfig.scmMinTlsVersion": "1.2",
        "properties.siteConfig.ftpsState": "Disabled",
        "identity.type": "UserAssigned",
        "properties.functionAppConfig.runtime": { name: "node", version: "22" },
        "properties.functionAppConfig.deployment.storage.type": "blobContainer",
        "properties.functionAppConfig.deployment.storage.authentication.type": "UserAssignedIdentity",
      }),
    ).toEqual([]);
    const plan = only(resourcesOfType(api, "Microsoft.Web/serverfarms"), "plan");
    expect(literal(plan.body.entries.sku)).toEqual({ name: "FC1", tier: "FlexConsumption" });

    const policies = resourcesOfType(api, "Microsoft.Web/sites/basicPublishingCredentialsPolicies");
    const allowed = Object.fromEntries(policies.map((p) => [literal(p.body.entries.name), literal(get(p.body, "properties.allow"))]));
    expect(allowed, "basic publishing credentials (FTP and SCM) must be disallowed").toEqual({ ftp: false, scm: false });
  });

  it("no template reads a key or builds a connection string with one", () => {
    const forbidden = /listKeys\(|listConnectionStrings\(|listAccountSas\(|listServiceSas\(|listSecrets\(|AccountKey=|SharedAccessKey=|accesskey=|\.primaryKey\b|\.primaryMasterKey\b/i;
    const hits = allFiles().flatMap((f) =>
      f.code
        .split("\n")
        .map((line, i) => ({ line, n: i + 1 }))
        .filter(({ line }) => forbidden.test(line))
        .map(({ line, n }) => `${rel(f.path)}:${n}: ${line.trim()}`),
    );
    expect(hits).toEqual([]);
  });

  it("outputs no secret", () => {
    const suspicious: string[] = [];
    for (const f of allFiles()) {
      for (const o of f.outputs.values()) {
        const value = show(o.value);
        const secretName = /(KEY|SECRET|PASSWORD|CONNECTION_?STRING|TOKEN)$/i.test(o.name);
        const secretValue = /list\w*\(|ConnectionString|\.secret|@secure/i.test(value);
        if (secretName || secretValue || o.decorators.some((d) => d.name === "secure")) suspicious.push(`${rel(f.path)} output ${o.name} = ${value}`);
      }
    }
    expect(suspicious).toEqual([]);
  });
});

describe("role assignments", () => {
  const assignments = () =>
    everyResource().filter(({ resource }) => /^Microsoft\.Authorization\/roleAssignments$|\/sqlRoleAssignments$/i.test(resource.type));

  it("are named guid(scope, principal, role), so re-provisioning never duplicates them", () => {
    const bad = assignments()
      .map(({ file, resource }) => ({ where: `${rel(file.path)} ${resource.symbol}`, name: show(resource.body.entries.name) }))
      .filter(({ name }) => !/^guid\([^,]+\.id,\s*[^,]+,\s*[^,)]+\)$/.test(name));
    expect(bad).toEqual([]);
  });

  it("are scoped to a single resource, never a resource group or subscription", () => {
    const bad = assignments()
      .filter(({ resource }) => resource.type === "Microsoft.Authorization/roleAssignments")
      .filter(({ resource }) => resource.body.entries.scope?.kind !== "expr")
      .map(({ file, resource }) => `${rel(file.path)} ${resource.symbol}`);
    expect(bad).toEqual([]);
  });

  it("give the app identity exactly the roles it needs, and people only Key Vault secrets", () => {
    const access = moduleOf("access");
    const roles = access.vars.get("roles");
    const roleName = (v: BicepValue | undefined): string => {
      // roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.<name>)
      const m = /roles\.(\w+)\)$/.exec(show(v));
      return m && roles?.kind === "object" && roles.entries[m[1]!] ? m[1]! : show(v);
    };
    const granted = resourcesOfType(access, "Microsoft.Authorization/roleAssignments").map(
      (r) => `${show(get(r.body, "properties.principalId"))} ${roleName(get(r.body, "properties.roleDefinitionId"))} on ${show(r.body.entries.scope)}${r.condition ? ` if ${r.condition}` : ""}`,
    );
    expect(granted.sort()).toEqual(
      [
        "appPrincipalId storageBlobDataOwner on storage",
        "appPrincipalId storageQueueDataContributor on storage",
        "appPrincipalId keyVaultSecretsOfficer on vault",
        "appPrincipalId monitoringMetricsPublisher on appInsights",
        "appPrincipalId communicationAndEmailServiceOwner on communication",
        "deployerPrincipalId keyVaultSecretsOfficer on vault if !empty(deployerPrincipalId)",
      ].sort(),
    );
    const cosmos = only(resourcesOfType(access, "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments"), "Cosmos DB data role");
    expect(show(get(cosmos.body, "properties.principalId"))).toBe("appPrincipalId");
    expect(show(get(cosmos.body, "properties.roleDefinitionId"))).toBe("'${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributor}'");
    expect(literal(access.vars.get("cosmosDataContributor")), "Cosmos DB Built-in Data Contributor").toBe("00000000-0000-0000-0000-000000000002");
    expect(show(main().modules.find((m) => m.symbol === "access")?.params.appPrincipalId)).toBe("identity.outputs.principalId");
  });
});
