/** local.settings.json for npm start: generated secrets on first run, and the host's master key added to older files. */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { ensureLocalSettings } from "../../dev/local-settings";

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
