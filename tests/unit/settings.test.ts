import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "@jest/globals";
import { parseSettings, SETTING } from "../../shared/config/settings";

const local = {
  SafeDataStorage: "UseDevelopmentStorage=true",
  CosmosDb: "AccountEndpoint=http://127.0.0.1:8081/;AccountKey=a2V5;",
  KEY_PROVIDER: "local",
  LOCAL_MASTER_KEY: Buffer.alloc(32, 1).toString("base64"),
  EMAIL_PROVIDER: "outbox",
  ADMIN_API_KEY: "a".repeat(40),
};

describe("settings", () => {
  it("parses a local configuration with defaults", () => {
    const s = parseSettings(local);
    expect(s.maxUploadBytes).toBe(2 * 1024 ** 3);
    expect(s.purgeGraceMinutes).toBe(60);
    expect(s.keys.provider).toBe("local");
    expect(s.telemetry).toBeUndefined();
    expect(s.allowLoopbackWebhooks).toBe(false);
    expect(s.localClockControl).toBe(false);
    expect(parseSettings({ ...local, ALLOW_LOOPBACK_WEBHOOKS: "true", LOCAL_CLOCK_CONTROL: "true" })).toMatchObject({ allowLoopbackWebhooks: true, localClockControl: true });
  });

  it.each([
    [{ ADMIN_API_KEY: undefined }, /ADMIN_API_KEY: is required but not set/],
    [{ ADMIN_API_KEY: "short" }, /ADMIN_API_KEY: must be at least 32 characters/],
    [{ KEY_PROVIDER: "keyvault" }, /KEY_VAULT_URI: is required when KEY_PROVIDER=keyvault/],
    [{ KEY_PROVIDER: "vault" }, /KEY_PROVIDER: /],
    [{ LOCAL_MASTER_KEY: "abc" }, /LOCAL_MASTER_KEY: must be 32 bytes/],
    [{ MAX_UPLOAD_BYTES: "-5" }, /MAX_UPLOAD_BYTES: /],
    [{ CosmosDb: undefined }, /CosmosDb__accountEndpoint: is required/],
    [{ CosmosDb: "not a connection string" }, /CosmosDb: must be a connection string/],
    [{ SafeDataStorage: undefined }, /SafeDataStorage__blobServiceUri: is required/],
    [{ EMAIL_PROVIDER: "acs" }, /ACS_ENDPOINT: is required when EMAIL_PROVIDER=acs/],
    [{ ADMIN_API_KEY: "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/a/)" }, /could not resolve/],
    [{ ALLOW_LOOPBACK_WEBHOOKS: "yes" }, /ALLOW_LOOPBACK_WEBHOOKS: /],
    [{ ALLOW_LOOPBACK_WEBHOOKS: "true", KEY_PROVIDER: "keyvault", KEY_VAULT_URI: "https://v.vault.azure.net/" }, /ALLOW_LOOPBACK_WEBHOOKS: may be true only locally/],
    [{ LOCAL_CLOCK_CONTROL: "true", EMAIL_PROVIDER: "acs", ACS_ENDPOINT: "https://x.communication.azure.com", EMAIL_SENDER_ADDRESS: "a@b.example" }, /LOCAL_CLOCK_CONTROL: may be true only locally/],
  ])("stops with one line naming the setting: %j", (change, message) => {
    const env: Record<string, string | undefined> = { ...local, ...change };
    expect(() => parseSettings(env)).toThrow(message);
    try {
      parseSettings(env);
    } catch (err) {
      expect((err as Error).message).not.toContain("\n");
    }
  });

  it("local.settings.sample.json lists every setting the code reads", () => {
    const sample = JSON.parse(readFileSync(path.join(__dirname, "../../local.settings.sample.json"), "utf8")) as { Values: Record<string, string> };
    const missing = Object.values(SETTING).filter((name) => !(name in sample.Values));
    expect(missing).toEqual([]);
  });
});
