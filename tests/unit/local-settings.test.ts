/** local.settings.json for npm start: generated secrets on first run, and the host's master key added to older files. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { applyLocalStoragePorts, ensureLocalSettings, portOf, storagePortInUse } from "../../dev/local-settings";
import { startEmbeddedStorage } from "../../dev/embedded-storage";

const sample = path.join(__dirname, "../../local.settings.sample.json");
const tmp = () => path.join(mkdtempSync(path.join(os.tmpdir(), "safedata-settings-")), "local.settings.json");

describe("local settings", () => {
  it("are created with fresh secrets, the host's master key among them", () => {
    const file = tmp();
    const { settings, created } = ensureLocalSettings(sample, file);
    expect(created).toBe(true);
    expect(settings.Values.LOCAL_MASTER_KEY).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(settings.Values.ADMIN_API_KEY).toMatch(/^sda_[A-Za-z0-9_-]{43}$/);
    expect(settings.Host?.MasterKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const other = ensureLocalSettings(sample, tmp()).settings;
    expect(other.Host?.MasterKey).not.toBe(settings.Host?.MasterKey);
    // Read again: the same values, nothing regenerated.
    expect(ensureLocalSettings(sample, file)).toEqual({ settings, created: false });
  });

  it("get a master key added when a file from before it lacks one, keeping everything else", () => {
    const file = tmp();
    const old = { IsEncrypted: false, Values: { ADMIN_API_KEY: "x".repeat(40), CUSTOM: "kept" }, Host: { LocalHttpPort: 7999, CORS: "*" }, ConnectionStrings: {} };
    writeFileSync(file, JSON.stringify(old));
    const { settings, created } = ensureLocalSettings(sample, file);
    expect(created).toBe(false);
    expect(settings.Host?.MasterKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const written = JSON.parse(readFileSync(file, "utf8")) as typeof old & { Host: { MasterKey: string } };
    expect(written).toEqual({ ...old, Host: { ...old.Host, MasterKey: settings.Host!.MasterKey } });
    expect(ensureLocalSettings(sample, file).settings.Host?.MasterKey).toBe(settings.Host!.MasterKey);
  });
});

describe("the embedded storage's ports (npm start)", () => {
  const env = () => ({
    AzureWebJobsStorage: "DefaultEndpointsProtocol=http;AccountName=a;BlobEndpoint=http://127.0.0.1:10000/a;QueueEndpoint=http://127.0.0.1:10001/a;",
    SafeDataStorage: "DefaultEndpointsProtocol=http;AccountName=a;BlobEndpoint=http://127.0.0.1:10000/a;QueueEndpoint=http://127.0.0.1:10001/a;",
    CosmosDb: "AccountEndpoint=http://127.0.0.1:8081/;AccountKey=k;",
  });

  it("move with LOCAL_BLOB_PORT, LOCAL_QUEUE_PORT and LOCAL_COSMOS_PORT, in every connection string to them", () => {
    const moved = applyLocalStoragePorts({ ...env(), LOCAL_BLOB_PORT: "20000", LOCAL_QUEUE_PORT: "20001", LOCAL_COSMOS_PORT: "28081" });
    for (const name of ["AzureWebJobsStorage", "SafeDataStorage"]) {
      expect(portOf(moved[name]!, "BlobEndpoint"), name).toBe(20000);
      expect(portOf(moved[name]!, "QueueEndpoint"), name).toBe(20001);
    }
    expect(portOf(moved.CosmosDb!, "AccountEndpoint")).toBe(28081);
    expect(applyLocalStoragePorts(env())).toEqual(env());
    expect(() => applyLocalStoragePorts({ ...env(), LOCAL_COSMOS_PORT: "70000" })).toThrow(/LOCAL_COSMOS_PORT/);
  });

  it("taken by something else: the error names the port and the setting that moves it", async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
    const taken = (blocker.address() as AddressInfo).port;
    try {
      let message = "";
      await startEmbeddedStorage({ blobPort: 0, queuePort: 0, cosmosPort: taken }).then(
        (s) => s.stop(),
        (err: Error) => (message = err.message),
      );
      expect(message).toMatch(/EADDRINUSE/);
      const said = storagePortInUse(message, { blob: 10000, queue: 10001, cosmos: taken });
      expect(said).toContain(String(taken));
      expect(said).toContain("LOCAL_COSMOS_PORT");
      expect(storagePortInUse("listen EADDRINUSE: address already in use 127.0.0.1:10000", { blob: 10000, queue: 10001, cosmos: 8081 })).toContain("LOCAL_BLOB_PORT");
    } finally {
      await new Promise<void>((r) => blocker.close(() => r()));
    }
  }, 30_000);
});
