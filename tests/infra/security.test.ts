/**
 * The security properties the deployment promises, on the resources a deployment of the compiled template creates:
 * no shared keys, local auth off everywhere it can be, TLS 1.2, HTTPS only, no FTP, RBAC-only Key Vault with purge
 * protection, masked client IPs in telemetry, no keys anywhere in the template, and role assignments that are
 * idempotent and no wider than the app needs.
 */
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { showExpr, type Json } from "./arm";
import { allResources, at, azdUp, compiled, ofType, only, parseArm, type Deployment, type Resource } from "./compiled";

/** Collects "path: expected X, found Y" for each property that differs, so one run shows every drift. */
function mismatches(resource: Resource, expected: Record<string, Json>): string[] {
  return Object.entries(expected)
    .filter(([path, want]) => JSON.stringify(at(resource.body, path)) !== JSON.stringify(want))
    .map(([path, want]) => `${resource.type} ${resource.name} ${path}: expected ${JSON.stringify(want)}, found ${JSON.stringify(at(resource.body, path))}`);
}

const one = (type: string): Resource => only(ofType(azdUp(), type), type);

describe("security properties", () => {
  it("storage: no shared keys, no public blobs, TLS 1.2, HTTPS only, Entra ID by default, no cross-tenant replication", () => {
    expect(
      mismatches(one("Microsoft.Storage/storageAccounts"), {
        "properties.allowSharedKeyAccess": false,
        "properties.allowBlobPublicAccess": false,
        "properties.minimumTlsVersion": "TLS1_2",
        "properties.supportsHttpsTrafficOnly": true,
        "properties.defaultToOAuthAuthentication": true,
        "properties.allowCrossTenantReplication": false,
      }),
    ).toEqual([]);
  });

  it("Cosmos DB: local (key) auth off, no key-based metadata writes, TLS 1.2", () => {
    expect(
      mismatches(one("Microsoft.DocumentDB/databaseAccounts"), {
        "properties.disableLocalAuth": true,
        "properties.disableKeyBasedMetadataWriteAccess": true,
        "properties.minimalTlsVersion": "Tls12",
      }),
    ).toEqual([]);
  });

  it("Application Insights and Log Analytics: local auth off, client IPs masked, 30 days, in the workspace", () => {
    const workspace = one("Microsoft.OperationalInsights/workspaces");
    expect(
      mismatches(one("Microsoft.Insights/components"), {
        "properties.DisableLocalAuth": true,
        "properties.DisableIpMasking": false,
        "properties.WorkspaceResourceId": workspace.id,
        "properties.IngestionMode": "LogAnalytics",
      }),
    ).toEqual([]);
    expect(mismatches(workspace, { "properties.features.disableLocalAuth": true, "properties.retentionInDays": 30 })).toEqual([]);
  });

  it("Communication Services: access keys off (the app sends with its Entra token)", () => {
    expect(mismatches(one("Microsoft.Communication/communicationServices"), { "properties.disableLocalAuth": true })).toEqual([]);
  });

  it("e-mail domains: no engagement tracking (no pixels or rewritten links in breach notices), custom domain included", () => {
    const d = azdUp({ emailCustomDomainName: "notify.example.eu", emailCustomDomainVerified: true });
    const domains = ofType(d, "Microsoft.Communication/emailServices/domains");
    expect(domains.map((r) => at(r.body, "properties.domainManagement")).sort()).toEqual(["AzureManaged", "CustomerManaged"]);
    for (const r of domains) expect(at(r.body, "properties.userEngagementTracking"), r.name).toBe("Disabled");
  });

  it("Key Vault: RBAC only, purge protection, 90-day soft delete, no access policies", () => {
    expect(
      mismatches(one("Microsoft.KeyVault/vaults"), {
        "properties.enableRbacAuthorization": true,
        "properties.enablePurgeProtection": true,
        "properties.enableSoftDelete": true,
        "properties.softDeleteRetentionInDays": 90,
        "properties.accessPolicies": [],
        "properties.enabledForTemplateDeployment": false,
      }),
    ).toEqual([]);
  });

  it("function app: HTTPS only, TLS 1.2, FTP and basic-auth publishing off, user-assigned identity, Flex Consumption, Node 22", () => {
    expect(
      mismatches(one("Microsoft.Web/sites"), {
        kind: "functionapp,linux",
        "properties.httpsOnly": true,
        "properties.siteConfig.minTlsVersion": "1.2",
        "properties.siteConfig.scmMinTlsVersion": "1.2",
        "properties.siteConfig.ftpsState": "Disabled",
        "identity.type": "UserAssigned",
        "properties.functionAppConfig.runtime": { name: "node", version: "22" },
        "properties.functionAppConfig.deployment.storage.type": "blobContainer",
        "properties.functionAppConfig.deployment.storage.authentication.type": "UserAssignedIdentity",
        "properties.serverFarmId": one("Microsoft.Web/serverfarms").id,
      }),
    ).toEqual([]);
    expect(one("Microsoft.Web/serverfarms").body.sku).toEqual({ name: "FC1", tier: "FlexConsumption" });
    const policies = ofType(azdUp(), "Microsoft.Web/sites/basicPublishingCredentialsPolicies");
    const allowed = Object.fromEntries(policies.map((p) => [p.name.split("/").pop(), at(p.body, "properties.allow")]));
    expect(allowed, "basic publishing credentials (FTP and SCM) must be disallowed").toEqual({ ftp: false, scm: false });
  });

  it("no template reads a key or builds a connection string with one", () => {
    const forbidden = /listKeys\(|listConnectionStrings\(|listAccountSas\(|listServiceSas\(|listSecrets\(|listCredentials\(|AccountKey=|SharedAccessKey=|accesskey=|primaryKey|primaryMasterKey/gi;
    expect(compiled().text.match(forbidden) ?? []).toEqual([]);
  });

  it("outputs no secret, and declares no secure output", () => {
    const suspicious: string[] = [];
    for (const [name, value] of Object.entries(azdUp().outputs)) {
      const secretName = /(KEY|SECRET|PASSWORD|CONNECTION_?STRING|TOKEN)$/i.test(name);
      const secretValue = /AccountKey=|SharedAccessKey|InstrumentationKey=|;Key=|\bsig=/i.test(String(value));
      if (secretName || secretValue) suspicious.push(`${name} = ${String(value)}`);
    }
    expect(suspicious).toEqual([]);
    expect(compiled().text.match(/"type": "secure(String|Object)"/gi) ?? [], "secure outputs or parameters").toEqual([]);
  });
});

describe("role assignments", () => {
  const ROLES: Record<string, string> = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "09976791-48a7-449e-bb21-39d1a415f350": "Communication and Email Service Owner",
  };
  const assignments = (d: Deployment) => ofType(d, "Microsoft.Authorization/roleAssignments");
  /** The app identity's principal id, as Azure gives it. */
  const appPrincipal = (d: Deployment): string => {
    const identity = only(ofType(d, "Microsoft.ManagedIdentity/userAssignedIdentities"), "identity");
    return String(at(identity.evaluate(`[reference('${identity.id}', '${identity.apiVersion}')]`), "principalId"));
  };

  /** "<who> <role> on <resource type>/<name>" for each assignment. */
  const granted = (d: Deployment): string[] => {
    const app = appPrincipal(d);
    return assignments(d).map((r) => {
      const principal = at(r.body, "properties.principalId");
      const who = principal === app ? "app" : principal === d.parameters.principalId ? "deployer" : `unknown principal ${String(principal)}`;
      const role = String(at(r.body, "properties.roleDefinitionId")).split("/").pop()!;
      const scope = String(r.body.scope).split("/providers/").pop();
      return `${who} ${ROLES[role] ?? role} on ${scope}`;
    });
  };

  it("give the app identity exactly the roles it needs, each on one resource, and the deployer only Key Vault secrets", () => {
    const d = azdUp();
    const name = (type: string) => only(ofType(d, type), type).name;
    expect(granted(d).sort()).toEqual(
      [
        `app Storage Blob Data Owner on Microsoft.Storage/storageAccounts/${name("Microsoft.Storage/storageAccounts")}`,
        `app Storage Queue Data Contributor on Microsoft.Storage/storageAccounts/${name("Microsoft.Storage/storageAccounts")}`,
        `app Key Vault Secrets Officer on Microsoft.KeyVault/vaults/${name("Microsoft.KeyVault/vaults")}`,
        `app Monitoring Metrics Publisher on Microsoft.Insights/components/${name("Microsoft.Insights/components")}`,
        `app Communication and Email Service Owner on Microsoft.Communication/communicationServices/${name("Microsoft.Communication/communicationServices")}`,
        `deployer Key Vault Secrets Officer on Microsoft.KeyVault/vaults/${name("Microsoft.KeyVault/vaults")}`,
      ].sort(),
    );
  });

  it("grant people nothing when azd has no principal id", () => {
    expect(granted(azdUp({ principalId: "" })).filter((g) => !g.startsWith("app "))).toEqual([]);
  });

  it("scope every assignment to a resource this deployment creates, never a resource group or subscription", () => {
    const d = azdUp();
    // Resources proper: not the resource group, not the module deployments.
    const created = new Set(
      allResources(d)
        .filter((r) => r.deployed && !/^Microsoft\.Resources\//.test(r.type))
        .map((r) => r.id.toLowerCase()),
    );
    for (const r of assignments(d)) {
      const scope = String(r.body.scope);
      expect(created.has(scope.toLowerCase()), `${r.name} scope ${scope} is a resource of this deployment`).toBe(true);
    }
  });

  it("are named guid(scope, principal, role), so re-provisioning never duplicates them", () => {
    for (const r of assignments(azdUp())) {
      const name = parseArm(String(r.raw.name));
      expect(name.kind === "call" && name.name.toLowerCase() === "guid" && name.args.length === 3, `${String(r.raw.name)}`).toBe(true);
      if (name.kind !== "call") continue;
      const [scope, principal, role] = name.args.map((a) => r.evaluate(`[${showExpr(a)}]`));
      expect(scope, `${r.name}: first guid() argument is the scope`).toBe(r.body.scope);
      expect(principal, `${r.name}: second is the principal`).toBe(at(r.body, "properties.principalId"));
      expect(String(at(r.body, "properties.roleDefinitionId")).endsWith(`/${String(role)}`), `${r.name}: third is the role`).toBe(true);
    }
  });

  it("give the app Cosmos DB's built-in data contributor role on its own account, data plane only", () => {
    const d = azdUp();
    const account = one("Microsoft.DocumentDB/databaseAccounts");
    const data = only(ofType(d, "Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments"), "Cosmos DB data role");
    expect(data.name.startsWith(`${account.name}/`)).toBe(true);
    expect(at(data.body, "properties.principalId")).toBe(appPrincipal(d));
    expect(at(data.body, "properties.roleDefinitionId")).toBe(`${account.id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002`);
    expect(at(data.body, "properties.scope")).toBe(account.id);
  });
});
