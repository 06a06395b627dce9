/**
 * Libraries that hold many megabytes once loaded are loaded on first use, never by an import at the top of deployed
 * code: every Functions instance loads every module of the app at start, and these four (the GeoLite2 data, the IAB
 * TCF and GPP libraries, the ISO country list: about 46 MB together) are needed only to record a consent. Loaded at
 * start, they raised the memory of every instance (the upload benchmark's baseline 160 -> 208 MB).
 */
import { describe, it } from "@jest/globals";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { expect } from "../helpers/expect";

const HEAVY = ["geoip-country", "@iabtechlabtcf/core", "@iabgpp/cmpapi", "i18n-iso-countries"];
const root = path.resolve(__dirname, "../..");

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith(".ts") && !p.endsWith(".d.ts") ? [p] : [];
  });
}

describe("heavy libraries", () => {
  it("are never imported at the top of deployed code (only `import type`, or a require inside a loader)", () => {
    const found: string[] = [];
    for (const file of [...sources(path.join(root, "shared")), ...sources(path.join(root, "functions"))]) {
      const text = readFileSync(file, "utf8");
      for (const name of HEAVY) {
        const escaped = name.replace(/[/@.-]/g, (c) => `\\${c}`);
        const topLevel = new RegExp(`^import (?!type )[^;]*from ["']${escaped}["']`, "m");
        if (topLevel.test(text)) found.push(`${path.relative(root, file)}: ${name}`);
      }
    }
    expect(found).toEqual([]);
  });
});
