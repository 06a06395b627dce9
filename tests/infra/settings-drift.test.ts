/**
 * The function app's app settings (infra/app/function-app.bicep) against the settings the code reads
 * (shared/config/settings.ts). Both lists are read from their sources, never copied here: a setting added to the
 * code without a decision about Azure, or an app setting nobody reads, fails a test that names it.
 */
import { randomBytes } from "node:crypto";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { SETTING, parseSettings } from "../../shared/config/settings";
import { get, interpolationParts, literal, show, type BicepValue } from "./bicep-reader";
import { evaluateString, literalVars, main, moduleOf, readRepoFile, resourcesOfType, only } from "./infra";

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
};

/**
 * Plausible values for the function-app module's parameters, shaped like what Azure returns for them
 * (storage primaryEndpoints, Cosmos documentEndpoint, Key Vault vaultUri, ACS hostName, managed-domain sender).
 */
const PLACEHOLDERS: Record<string, string> = {
  identityClientId: "6f1a7b1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
  blobServiceUri: "https://stexample123.blob.core.windows.net/",
  queueServiceUri: "https://stexample123.queue.core.windows.net/",
  cosmosAccountEndpoint: "https://cosmos-example123.documents.azure.com:443/",
  cosmosDatabaseName: "safedata",
  keyVaultUri: "https://kv-example123.vault.azure.net/",
  adminApiKeySecretName: "admin-api-key",
  acsEndpoint: "https://acs-example123.europe.communication.azure.com",
  emailSenderAddress: "DoNotReply@5e3c1f0a-7b2d-4c6e-9f8a-1b2c3d4e5f60.azurecomm.net",
  appInsightsConnectionString:
    "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/",
};

const KEY_VAULT_REFERENCE = /^@Microsoft\.KeyVault\(SecretUri=https:\/\/[a-z0-9-]+\.vault\.azure\.net\/secrets\/([A-Za-z0-9-]+)\/\)$/;

const codeSettings = new Set<string>(Object.values(SETTING));

function appSettings(): Record<string, BicepValue> {
  const v = moduleOf("api").vars.get("appSettings");
  if (v?.kind !== "object") throw new Error(`${FUNCTION_APP}: var appSettings must be an object literal`);
  return { ...v.entries };
}

/** The app settings with the module's parameters replaced by placeholders: what the app sees before Key Vault references resolve. */
function evaluatedAppSettings(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(appSettings())) env[name] = evaluateString(value, PLACEHOLDERS, `${FUNCTION_APP} ${name}`);
  return env;
}

/** What the platform hands the app: every Key Vault reference replaced by a secret like the one the hook creates. */
function resolvedEnv(): Record<string, string> {
  const env = evaluatedAppSettings();
  for (const [name, value] of Object.entries(env)) {
    if (value.startsWith("@Microsoft.KeyVault(")) env[name] = randomBytes(32).toString("base64url");
  }
  return env;
}

describe("function app settings vs. shared/config/settings.ts", () => {
  it("sets nothing the code does not read, except the declared host-read settings", () => {
    const unread = Object.keys(appSettings()).filter((name) => !codeSettings.has(name) && !(name in HOST_READ));
    expect(
      unread,
      `${FUNCTION_APP} sets settings that shared/config/settings.ts (SETTING) does not read: remove them, or add them to ` +
        "HOST_READ in this test with the reason the Functions host needs them",
    ).toEqual([]);
  });

  it("decides for every setting the code reads: set in Azure, or declared as left unset with a reason", () => {
    const set = new Set(Object.keys(appSettings()));
    const undecided = [...codeSettings].filter((name) => !set.has(name) && !(name in NOT_SET_IN_AZURE));
    expect(
      undecided,
      `shared/config/settings.ts reads settings that ${FUNCTION_APP} does not set: add them to appSettings there, or to ` +
        "NOT_SET_IN_AZURE in this test with the reason Azure leaves them unset",
    ).toEqual([]);
  });

  it("keeps the declared lists honest (no stale or contradictory entries)", () => {
    const set = new Set(Object.keys(appSettings()));
    const staleUnset = Object.keys(NOT_SET_IN_AZURE).filter((n) => !codeSettings.has(n) || set.has(n));
    expect(staleUnset, "NOT_SET_IN_AZURE names settings the code no longer reads, or that the Bicep does set").toEqual([]);
    const staleHost = Object.keys(HOST_READ).filter((n) => codeSettings.has(n) || !set.has(n));
    expect(staleHost, "HOST_READ names settings the code reads itself, or that the Bicep no longer sets").toEqual([]);
  });

  it("never sets the local-only settings (connection strings with keys, the local master key)", () => {
    const local = [SETTING.cosmosConnectionString, SETTING.storageConnectionString, SETTING.localMasterKey];
    expect(Object.keys(appSettings()).filter((n) => (local as string[]).includes(n))).toEqual([]);
  });

  it("holds no key, connection string with a key, or secret value", () => {
    const leaks = Object.entries(appSettings())
      .filter(([, v]) => /AccountKey=|SharedAccessKey|accesskey=|listKeys\(|listConnectionStrings\(|\.primaryKey|\.secondaryKey/i.test(show(v)))
      .map(([n, v]) => `${n} = ${show(v)}`);
    expect(leaks, `${FUNCTION_APP} app settings must use identity-based connections only`).toEqual([]);
  });

  it("is accepted by parseSettings in Azure mode: Key Vault keys, ACS e-mail, identity connections with the app's client id", () => {
    const settings = parseSettings(resolvedEnv());
    const clientId = PLACEHOLDERS.identityClientId;
    expect(settings.keys).toEqual({ provider: "keyvault", vaultUri: PLACEHOLDERS.keyVaultUri, clientId });
    expect(settings.email).toEqual({ provider: "acs", endpoint: PLACEHOLDERS.acsEndpoint, sender: PLACEHOLDERS.emailSenderAddress, clientId });
    expect(settings.cosmos).toEqual({
      kind: "identity",
      endpoint: PLACEHOLDERS.cosmosAccountEndpoint,
      clientId,
      database: PLACEHOLDERS.cosmosDatabaseName,
    });
    expect(settings.storage).toEqual({
      kind: "identity",
      blobServiceUri: PLACEHOLDERS.blobServiceUri,
      queueServiceUri: PLACEHOLDERS.queueServiceUri,
      clientId,
    });
    expect(settings.telemetry).toEqual({
      connectionString: PLACEHOLDERS.appInsightsConnectionString,
      authentication: `Authorization=AAD;ClientId=${clientId}`,
      clientId,
    });
  });

  it("gets the admin API key from Key Vault, through the app's identity, from the secret the post-provision hook creates", () => {
    const value = evaluatedAppSettings()[SETTING.adminApiKey] ?? "";
    const match = KEY_VAULT_REFERENCE.exec(value);
    expect(match, `${SETTING.adminApiKey} must be a versionless Key Vault reference, got ${value}`).not.toBeNull();

    const secretName = literalVars(main()).adminApiKeySecretName;
    expect(secretName, "infra/main.bicep var adminApiKeySecretName").toBeDefined();
    expect(show(main().modules.find((m) => m.symbol === "api")?.params.adminApiKeySecretName)).toBe("adminApiKeySecretName");
    expect(show(main().outputs.get("ADMIN_API_KEY_SECRET_NAME")?.value)).toBe("adminApiKeySecretName");
    const hook = readRepoFile("infra/scripts/ensure-admin-key.mjs");
    expect(hook, "the hook's default secret name").toContain(`|| "${secretName}"`);

    const site = only(resourcesOfType(moduleOf("api"), "Microsoft.Web/sites"), "function app");
    expect(show(get(site.body, "properties.keyVaultReferenceIdentity")), "Key Vault references resolve with the user-assigned identity").toBe(
      "identityId",
    );
  });

  it("names the app's own identity wherever a client id is set", () => {
    const clientIdSettings = Object.entries(appSettings()).filter(([n]) => /__clientId$|^AZURE_CLIENT_ID$/.test(n));
    expect(clientIdSettings.length).toBeGreaterThanOrEqual(4);
    for (const [name, value] of clientIdSettings) expect(show(value), name).toBe("identityClientId");
    const auth = appSettings()[SETTING.appInsightsAuthentication];
    expect(auth?.kind === "string" ? interpolationParts(auth.raw) : [], SETTING.appInsightsAuthentication).toEqual([
      { text: "Authorization=AAD;ClientId=" },
      { expr: "identityClientId" },
    ]);
    expect(show(main().modules.find((m) => m.symbol === "api")?.params.identityClientId)).toBe("identity.outputs.clientId");
  });

  it("builds every app setting from the module's own parameters, all of which main.bicep passes", () => {
    const api = moduleOf("api");
    const passed = main().modules.find((m) => m.symbol === "api")?.params ?? {};
    const names = Object.values(appSettings()).flatMap((v) =>
      v.kind === "string" ? interpolationParts(v.raw).flatMap((p) => ("expr" in p ? [p.expr] : [])) : v.kind === "expr" ? [v.text] : [],
    );
    expect(names.filter((n) => !api.params.has(n)), `names in appSettings that are not parameters of ${FUNCTION_APP}`).toEqual([]);
    expect(names.filter((n) => !(n in passed)), "parameters infra/main.bicep does not pass to module api").toEqual([]);
    expect(names.filter((n) => !(n in PLACEHOLDERS)), "parameters this test has no placeholder for").toEqual([]);
  });

  it("uses identity-based credentials for every connection the host opens", () => {
    for (const prefix of ["AzureWebJobsStorage", "SafeDataStorage", "CosmosDb"]) {
      expect(literal(appSettings()[`${prefix}__credential`]), `${prefix}__credential`).toBe("managedidentity");
    }
  });

  it("refuses to start when a Key Vault reference (ADMIN_API_KEY) was not resolved by the platform", () => {
    const env = { ...resolvedEnv(), [SETTING.adminApiKey]: "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/admin-api-key/)" };
    expect(() => parseSettings(env)).toThrow(/ADMIN_API_KEY: is a Key Vault reference the platform could not resolve/);
  });
});
