/**
 * The function app's app settings, as a deployment of the compiled template gives them to the app (every module
 * output and runtime value filled in: ./compiled.ts), against the settings the code reads
 * (shared/config/settings.ts). Both lists are read from their sources, never copied here: a setting added to the
 * code without a decision about Azure, or an app setting nobody reads, fails a test that names it.
 */
import { randomBytes } from "node:crypto";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { SETTING, parseSettings } from "../../shared/config/settings";
import { isObject, type Json } from "./arm";
import { at, azdUp, ofType, only, readRepoFile, type Deployment } from "./compiled";

const FUNCTION_APP = "infra/app/function-app.bicep";

/** Settings the Functions host reads itself (the code never does), each with why it is set. */
const HOST_READ: Record<string, string> = {
  AzureWebJobsStorage__blobServiceUri: "the host's own storage (timer schedule locks, host keys), identity-based",
  AzureWebJobsStorage__credential: "tells the host to use a managed identity for AzureWebJobsStorage",
  AzureWebJobsStorage__clientId: "which (user-assigned) identity the host uses for AzureWebJobsStorage",
  SafeDataStorage__credential: "queue triggers (connection 'SafeDataStorage') authenticate with the managed identity",
  CosmosDb__credential: "kept with the other CosmosDb__ settings so a future Cosmos DB binding uses the identity too",
};

/** Settings the code reads that the Azure deployment deliberately leaves unset, each with why. */
const NOT_SET_IN_AZURE: Record<string, string> = {
  CosmosDb: "local only: a connection string with a key; Azure uses CosmosDb__accountEndpoint with the identity",
  SafeDataStorage: "local only: a connection string with a key; Azure uses the __blobServiceUri/__queueServiceUri settings",
  LOCAL_MASTER_KEY: "local key provider only; in Azure the keys live in Key Vault",
  MAX_UPLOAD_BYTES: "the code's default (2 GiB) applies; an operator may add it as an app setting to change it",
  UPLOAD_IDLE_SECONDS: "the code's default (60 s) applies; an operator may override it as an app setting",
  PURGE_GRACE_MINUTES: "the code's default applies; an operator may override it as an app setting",
  EVIDENCE_RETENTION_YEARS: "the code's default applies; an operator may override it as an app setting",
  SUSPENDED_TENANT_NOTICE_DAYS: "the code's default applies; an operator may override it as an app setting",
  CONSENT_LINK_DAYS: "the code's default (365 days) applies; an operator may override it as an app setting",
  CONSENT_EVIDENCE_YEARS: "the code's default (3 years) applies; an operator may override it as an app setting",
  CONSENT_EVIDENCE_MAX_BYTES: "the code's default (10 MiB) applies; an operator may override it as an app setting",
  DSR_CODE_TTL_MINUTES: "the code's default (60) applies; an operator may override it as an app setting",
  DSR_VERIFY_DAYS: "the code's default (14) applies; an operator may override it as an app setting",
  DSR_EXPORT_DAYS: "the code's default (7) applies; an operator may override it as an app setting",
  BREACH_CONTROLLER_NOTICE_HOURS: "the code's default (24) applies; an operator may override it as an app setting",
  BREACH_NOTICE_MAX_HOURS: "the code's default (72) applies; an operator may override it as an app setting",
  EMAIL_SENDS_PER_MINUTE: "the code's default (30, a new ACS resource's quota) applies; raise it with the quota",
  EMAIL_SENDS_PER_HOUR: "the code's default (100, a new ACS resource's quota) applies; raise it with the quota",
  ALLOW_LOOPBACK_WEBHOOKS: "local trials only (a webhook receiver on 127.0.0.1); refused at start-up with real keys or e-mail",
  LOCAL_CLOCK_CONTROL: "local trials only (a movable clock); refused at start-up with real keys or e-mail",
};

const KEY_VAULT_REFERENCE = /^@Microsoft\.KeyVault\(SecretUri=(https:\/\/[a-z0-9-]+\.vault\.azure\.net\/)secrets\/([A-Za-z0-9-]+)\/\)$/;

const codeSettings = new Set<string>(Object.values(SETTING));

/** The app settings resource's properties: exactly what the platform sets as environment variables. */
function appSettingsOf(d: Deployment): Record<string, Json> {
  const config = only(
    ofType(d, "Microsoft.Web/sites/config").filter((r) => r.name.endsWith("/appsettings")),
    "appsettings resource",
  );
  const props = config.body.properties;
  if (!isObject(props)) throw new Error(`${FUNCTION_APP}: appsettings has no properties object`);
  return props;
}

/** The app settings as strings, as the app reads them (every value must be a string). */
function envOf(d: Deployment): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(appSettingsOf(d))) {
    if (typeof value !== "string") throw new Error(`app setting ${name} is ${JSON.stringify(value)}, not a string`);
    env[name] = value;
  }
  return env;
}

/** What the platform hands the app: every Key Vault reference replaced by a secret like the one the hook creates. */
function resolvedEnv(d: Deployment): Record<string, string> {
  const env = envOf(d);
  for (const [name, value] of Object.entries(env)) {
    if (value.startsWith("@Microsoft.KeyVault(")) env[name] = randomBytes(32).toString("base64url");
  }
  return env;
}

const identityOf = (d: Deployment) => only(ofType(d, "Microsoft.ManagedIdentity/userAssignedIdentities"), "managed identity");

/** A runtime property of a resource, as the model of Azure gives it (what `reference()` returns). */
const runtime = (d: Deployment, type: string, property: string): string => {
  const r = only(ofType(d, type), type);
  const v = at(r.evaluate(`[reference('${r.id}', '${r.apiVersion}')]`), property);
  if (typeof v !== "string") throw new Error(`${type} ${property} is not a string`);
  return v;
};

describe("function app settings vs. shared/config/settings.ts", () => {
  it("sets nothing the code does not read, except the declared host-read settings", () => {
    const unread = Object.keys(appSettingsOf(azdUp())).filter((name) => !codeSettings.has(name) && !(name in HOST_READ));
    expect(
      unread,
      `${FUNCTION_APP} sets settings that shared/config/settings.ts (SETTING) does not read: remove them, or add them to ` +
        "HOST_READ in this test with the reason the Functions host needs them",
    ).toEqual([]);
  });

  it("decides for every setting the code reads: set in Azure, or declared as left unset with a reason", () => {
    const set = new Set(Object.keys(appSettingsOf(azdUp())));
    const undecided = [...codeSettings].filter((name) => !set.has(name) && !(name in NOT_SET_IN_AZURE));
    expect(
      undecided,
      `shared/config/settings.ts reads settings that ${FUNCTION_APP} does not set: add them to appSettings there, or to ` +
        "NOT_SET_IN_AZURE in this test with the reason Azure leaves them unset",
    ).toEqual([]);
  });

  it("keeps the declared lists honest (no stale or contradictory entries)", () => {
    const set = new Set(Object.keys(appSettingsOf(azdUp())));
    const staleUnset = Object.keys(NOT_SET_IN_AZURE).filter((n) => !codeSettings.has(n) || set.has(n));
    expect(staleUnset, "NOT_SET_IN_AZURE names settings the code no longer reads, or that the Bicep does set").toEqual([]);
    const staleHost = Object.keys(HOST_READ).filter((n) => codeSettings.has(n) || !set.has(n));
    expect(staleHost, "HOST_READ names settings the code reads itself, or that the Bicep no longer sets").toEqual([]);
  });

  it("never sets the local-only settings (connection strings with keys, the local master key, loopback webhooks, the movable clock)", () => {
    const local = [
      SETTING.cosmosConnectionString,
      SETTING.storageConnectionString,
      SETTING.localMasterKey,
      SETTING.allowLoopbackWebhooks,
      SETTING.localClockControl,
    ] as string[];
    expect(Object.keys(appSettingsOf(azdUp())).filter((n) => local.includes(n))).toEqual([]);
  });

  it("gives every setting a string value, none holding a key or a connection string with one", () => {
    const env = envOf(azdUp());
    const leaks = Object.entries(env)
      .filter(([, v]) => /AccountKey=|SharedAccessKey|accesskey=|;Key=|\bsig=/i.test(v))
      .map(([n, v]) => `${n} = ${v}`);
    expect(leaks, `${FUNCTION_APP} app settings must use identity-based connections only`).toEqual([]);
  });

  it("is accepted by parseSettings in Azure mode, with the endpoints and identity of the resources the deployment creates", () => {
    const d = azdUp();
    const settings = parseSettings(resolvedEnv(d));
    const clientId = runtime(d, "Microsoft.ManagedIdentity/userAssignedIdentities", "clientId");
    const vaultUri = runtime(d, "Microsoft.KeyVault/vaults", "vaultUri");
    const acsHost = runtime(d, "Microsoft.Communication/communicationServices", "hostName");
    const managedDomain = only(
      ofType(d, "Microsoft.Communication/emailServices/domains").filter((r) => at(r.body, "properties.domainManagement") === "AzureManaged"),
      "Azure-managed e-mail domain",
    );
    const senderDomain = at(managedDomain.evaluate(`[reference('${managedDomain.id}', '${managedDomain.apiVersion}')]`), "mailFromSenderDomain");
    const database = only(ofType(d, "Microsoft.DocumentDB/databaseAccounts/sqlDatabases"), "Cosmos DB database");
    const connectionString = runtime(d, "Microsoft.Insights/components", "ConnectionString");

    expect(settings.keys).toEqual({ provider: "keyvault", vaultUri, clientId });
    expect(settings.email).toEqual({ provider: "acs", endpoint: `https://${acsHost}`, sender: `DoNotReply@${String(senderDomain)}`, clientId });
    expect(settings.cosmos).toEqual({
      kind: "identity",
      endpoint: runtime(d, "Microsoft.DocumentDB/databaseAccounts", "documentEndpoint"),
      clientId,
      database: database.name.split("/")[1],
    });
    expect(settings.storage).toEqual({
      kind: "identity",
      blobServiceUri: runtime(d, "Microsoft.Storage/storageAccounts", "primaryEndpoints.blob"),
      queueServiceUri: runtime(d, "Microsoft.Storage/storageAccounts", "primaryEndpoints.queue"),
      clientId,
    });
    expect(settings.telemetry).toEqual({ connectionString, authentication: `Authorization=AAD;ClientId=${clientId}`, clientId });
  });

  it("sends from the verified custom domain once it is verified, and from the Azure-managed one before", () => {
    const domain = "notify.example.eu";
    const unverified = azdUp({ emailCustomDomainName: domain });
    expect(envOf(unverified)[SETTING.emailSender]).toMatch(/^DoNotReply@[0-9a-f-]{36}\.azurecomm\.net$/);
    const verified = azdUp({ emailCustomDomainName: domain, emailCustomDomainVerified: true });
    expect(envOf(verified)[SETTING.emailSender]).toBe(`DoNotReply@${domain}`);
    expect(verified.outputs.EMAIL_SENDER_ADDRESS).toBe(`DoNotReply@${domain}`);
    // Verified without a custom domain changes nothing.
    expect(envOf(azdUp({ emailCustomDomainVerified: true }))[SETTING.emailSender]).toBe(envOf(azdUp())[SETTING.emailSender]);
  });

  it("gets the admin API key from Key Vault, through the app's identity, from the secret the post-provision hook creates", () => {
    const d = azdUp();
    const value = envOf(d)[SETTING.adminApiKey] ?? "";
    const match = KEY_VAULT_REFERENCE.exec(value);
    expect(match, `${SETTING.adminApiKey} must be a versionless Key Vault reference, got ${value}`).not.toBeNull();
    expect(match![1], "the reference points at the deployment's own vault").toBe(runtime(d, "Microsoft.KeyVault/vaults", "vaultUri"));
    const secretName = match![2]!;
    expect(d.outputs.ADMIN_API_KEY_SECRET_NAME, "main.bicep output ADMIN_API_KEY_SECRET_NAME").toBe(secretName);
    expect(readRepoFile("infra/scripts/ensure-admin-key.mjs"), "the hook's default secret name").toContain(`|| "${secretName}"`);

    const site = only(ofType(d, "Microsoft.Web/sites"), "function app");
    expect(at(site.body, "properties.keyVaultReferenceIdentity"), "Key Vault references resolve with the user-assigned identity").toBe(identityOf(d).id);
  });

  it("names the app's own identity wherever a client id is set, and runs as that identity only", () => {
    const d = azdUp();
    const clientId = runtime(d, "Microsoft.ManagedIdentity/userAssignedIdentities", "clientId");
    const clientIdSettings = Object.entries(envOf(d)).filter(([n]) => /__clientId$|^AZURE_CLIENT_ID$/.test(n));
    expect(clientIdSettings.length).toBeGreaterThanOrEqual(4);
    for (const [name, value] of clientIdSettings) expect(value, name).toBe(clientId);
    expect(envOf(d)[SETTING.appInsightsAuthentication]).toBe(`Authorization=AAD;ClientId=${clientId}`);
    expect(d.outputs.AZURE_CLIENT_ID).toBe(clientId);

    const site = only(ofType(d, "Microsoft.Web/sites"), "function app");
    expect(at(site.body, "identity.type")).toBe("UserAssigned");
    expect(Object.keys(at(site.body, "identity.userAssignedIdentities") as object)).toEqual([identityOf(d).id]);
    expect(at(site.body, "properties.functionAppConfig.deployment.storage.authentication.userAssignedIdentityResourceId")).toBe(identityOf(d).id);
  });

  it("uses identity-based credentials for every connection the host opens", () => {
    const env = envOf(azdUp());
    for (const prefix of ["AzureWebJobsStorage", "SafeDataStorage", "CosmosDb"]) {
      expect(env[`${prefix}__credential`], `${prefix}__credential`).toBe("managedidentity");
    }
  });

  it("refuses to start when a Key Vault reference (ADMIN_API_KEY) was not resolved by the platform", () => {
    const env = envOf(azdUp());
    expect(() => parseSettings({ ...resolvedEnv(azdUp()), [SETTING.adminApiKey]: env[SETTING.adminApiKey] })).toThrow(
      /ADMIN_API_KEY: is a Key Vault reference the platform could not resolve/,
    );
  });
});
