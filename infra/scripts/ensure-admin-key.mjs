#!/usr/bin/env node
// azd "postprovision" hook: makes sure the admin API key exists in Key Vault, without ever printing it.
//
// - If secret ADMIN_API_KEY_SECRET_NAME ("admin-api-key") exists, nothing changes (re-provisioning keeps the key).
// - If not, 32 random bytes (base64url, 43 characters) become its first version.
// - With --rotate, a new version is written; the function app picks it up on restart (or within a day).
//
// It signs in as the person running azd (`azd auth login`, through AzureDeveloperCliCredential), who needs
// Key Vault Secrets Officer on the vault: main.bicep grants it when AZURE_PRINCIPAL_ID is set. The value is
// written straight to the vault; it never reaches the console, a file or the azd environment.
//
// Read the key afterwards with:
//   az keyvault secret show --vault-name <AZURE_KEY_VAULT_NAME> --name admin-api-key --query value -o tsv
import console from "node:console";
import process from "node:process";
import { URL } from "node:url";
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

const vaultUri = process.env.AZURE_KEY_VAULT_ENDPOINT;
const secretName = process.env.ADMIN_API_KEY_SECRET_NAME || "admin-api-key";
const tenantId = process.env.AZURE_TENANT_ID || undefined;
const rotate = process.argv.includes("--rotate");

if (!vaultUri) {
  console.error("AZURE_KEY_VAULT_ENDPOINT is not set: run this through azd (azd provision / azd hooks run postprovision).");
  process.exit(1);
}

let identity;
let keyvault;
try {
  identity = await import("@azure/identity");
  keyvault = await import("@azure/keyvault-secrets");
} catch {
  console.error("The Azure SDK packages are not installed here: run `npm ci` in the repository, then `azd hooks run postprovision`.");
  process.exit(1);
}

const credential = new identity.AzureDeveloperCliCredential(tenantId ? { tenantId } : {});
const client = new keyvault.SecretClient(vaultUri, credential);

const statusOf = (err) => (typeof err?.statusCode === "number" ? err.statusCode : undefined);

/** Role assignments made by the same provisioning can take a few minutes to apply: retry 403 for up to 5 minutes. */
async function withRbacRetry(what, fn) {
  const deadline = Date.now() + 5 * 60_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (statusOf(err) !== 403 || Date.now() > deadline) throw err;
      console.log(`${what}: access not granted yet (role assignments propagate), retrying (${attempt})...`);
      await sleep(15_000);
    }
  }
}

async function exists() {
  try {
    await withRbacRetry("reading the admin key's properties", () => client.getSecret(secretName));
    return true;
  } catch (err) {
    if (statusOf(err) === 404) return false;
    throw err;
  }
}

async function write() {
  const value = randomBytes(32).toString("base64url");
  const created = await withRbacRetry("writing the admin key", () =>
    client.setSecret(secretName, value, {
      contentType: "text/plain",
      tags: { purpose: "safedata admin API key (creates tenants, rotates keys)" },
    }),
  );
  return created.properties.version;
}

try {
  const present = await exists();
  if (present && !rotate) {
    console.log(`Admin API key "${secretName}" already exists in ${vaultUri}; left unchanged.`);
  } else {
    const version = await write();
    console.log(`${present ? "Rotated" : "Created"} admin API key "${secretName}" in ${vaultUri} (version ${version}); the value was not printed.`);
    if (present) console.log("Restart the function app so it reads the new version: az functionapp restart -g <resource group> -n <app>.");
  }
  console.log(`Read it with: az keyvault secret show --vault-name ${new URL(vaultUri).hostname.split(".")[0]} --name ${secretName} --query value -o tsv`);
} catch (err) {
  const status = statusOf(err);
  if (status === 409) {
    console.error(
      `Secret "${secretName}" is deleted but recoverable (soft delete). Recover it (az keyvault secret recover) or, to start over, ` +
        "wait for the retention period: purge protection forbids purging it.",
    );
  } else if (status === 403) {
    console.error("Access denied: the signed-in azd user needs Key Vault Secrets Officer on the vault (set AZURE_PRINCIPAL_ID and re-provision).");
  } else {
    console.error(`Could not ensure the admin API key: ${err instanceof Error ? err.message : String(err)}`);
  }
  process.exit(1);
}
