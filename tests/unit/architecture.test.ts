/**
 * The layer rules (eslint.layers.cjs, README "Architecture") catch what they are meant to: each forbidden import or
 * SQL text is linted in the folder where it is forbidden, and the same code passes where it is allowed. `npm test`
 * also lints the real code with these rules.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "@jest/globals";
import { ESLint, type Linter } from "eslint";
import tseslint from "typescript-eslint";
import { expect } from "../helpers/expect";

const ROOT = path.join(__dirname, "../..");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const layers = require(path.join(ROOT, "eslint.layers.cjs")) as Linter.Config[] & { DOMAIN_LIBRARIES: string[] };

const eslint = new ESLint({
  cwd: ROOT,
  overrideConfigFile: true,
  overrideConfig: [{ files: ["**/*.ts"], languageOptions: { parser: tseslint.parser as Linter.Parser } }, ...layers],
});

async function problems(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(ROOT, file) });
  return result!.messages.map((m) => `${m.ruleId ?? "parse"}: ${m.message}`);
}

const cases: Array<{ what: string; code: string; forbiddenIn: string[]; allowedIn: string[] }> = [
  {
    what: "an Azure SDK client",
    code: 'import { BlobServiceClient } from "@azure/storage-blob";\nexport const c = BlobServiceClient;\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/domain/x.ts"],
    allowedIn: ["shared/stores/x.ts", "shared/services.ts"],
  },
  {
    what: "the Functions library",
    code: 'import type { HttpRequest } from "@azure/functions";\nexport type R = HttpRequest;\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/stores/x.ts", "shared/domain/x.ts", "shared/email/x.ts"],
    allowedIn: ["functions/x.ts", "shared/http/x.ts"],
  },
  {
    what: "shared/http",
    code: 'import { problemUri } from "../http/problem";\nexport const p = problemUri;\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/stores/x.ts"],
    allowedIn: ["shared/x/x.ts"],
  },
  {
    what: "the local runtime",
    code: 'import { startEmbeddedStorage } from "../../dev/embedded-storage";\nexport const s = startEmbeddedStorage;\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/stores/x.ts", "shared/http/x.ts", "shared/domain/x.ts", "functions/x/x.ts"],
    allowedIn: ["tests/x/x.ts", "bench/x/x.ts"],
  },
  {
    what: "a store, from a trigger",
    code: 'import { UploadStore } from "../shared/stores/upload-store";\nexport const u = UploadStore;\n',
    forbiddenIn: ["functions/x.ts"],
    allowedIn: ["dev/x.ts"],
  },
  {
    what: "I/O, in the domain",
    code: 'import { readFileSync } from "node:fs";\nexport const r = readFileSync;\n',
    forbiddenIn: ["shared/domain/x.ts"],
    allowedIn: ["shared/stores/x.ts"],
  },
  {
    what: "a store or the services, from the domain",
    code: 'import { UploadStore } from "../stores/upload-store";\nimport type { Services } from "../services";\nexport const u = UploadStore;\nexport type S = Services;\n',
    forbiddenIn: ["shared/domain/x.ts"],
    allowedIn: ["shared/usecases/x.ts"],
  },
  {
    what: "a use case, from an adapter",
    code: 'import { createUpload } from "../usecases/uploads";\nexport const c = createUpload;\n',
    forbiddenIn: ["shared/stores/x.ts", "shared/http/x.ts"],
    allowedIn: ["shared/usecases/x.ts"],
  },
  {
    what: "SQL text",
    code: 'export const q = "SELECT * FROM c WHERE c.tenantId = @tenantId";\nexport const t = (n: number) => `SELECT TOP ${n} c.id FROM c`;\n',
    forbiddenIn: ["shared/usecases/x.ts"],
    allowedIn: ["shared/stores/x.ts"],
  },
  // Other spellings of a module name: dynamic imports, import types, require, import = require.
  {
    what: "an Azure SDK through a dynamic import",
    code: 'export const load = async () => (await import("@azure/cosmos")).CosmosClient;\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/domain/x.ts"],
    allowedIn: ["shared/stores/x.ts"],
  },
  {
    what: "an Azure SDK type through an import type",
    code: 'export type C = import("@azure/cosmos").Container;\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/domain/x.ts"],
    allowedIn: ["shared/stores/x.ts"],
  },
  {
    what: "an Azure SDK through require",
    code: 'export const c = require("@azure/storage-blob") as unknown;\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/domain/x.ts"],
    allowedIn: ["shared/stores/x.ts"],
  },
  {
    what: "shared/http through import = require",
    code: 'import problem = require("../http/problem");\nexport const p = problem;\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/stores/x.ts"],
    allowedIn: ["functions/x.ts"],
  },
  {
    what: "SQL text in lower or mixed case",
    code: 'export const q = "select * from c where c.tenantId = @t";\nexport const t = (n: number) => `Select Top ${n} c.id From c`;\n',
    forbiddenIn: ["shared/usecases/x.ts"],
    allowedIn: ["shared/stores/x.ts"],
  },
  // Network, in the application core and the domain.
  {
    what: "node:http",
    code: 'import http from "node:http";\nexport const h = http;\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/domain/x.ts"],
    allowedIn: ["shared/webhooks/x.ts", "shared/stores/x.ts"],
  },
  {
    what: "undici",
    code: 'import { request } from "undici";\nexport const r = request;\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/domain/x.ts"],
    allowedIn: ["shared/webhooks/x.ts"],
  },
  {
    what: "the global fetch",
    code: 'export const f = () => fetch("https://example.com/");\nexport const g = () => globalThis.fetch("https://example.com/");\n',
    forbiddenIn: ["shared/usecases/x.ts", "shared/domain/x.ts"],
    allowedIn: ["shared/webhooks/x.ts"],
  },
  // An SDK client in a trigger.
  {
    what: "an Azure SDK client, from a trigger",
    code: 'import { CosmosClient } from "@azure/cosmos";\nexport const c = CosmosClient;\n',
    forbiddenIn: ["functions/x.ts"],
    allowedIn: ["shared/stores/x.ts"],
  },
  // The domain's allow-list.
  {
    what: "an I/O module other than the file system, in the domain",
    code: 'import os from "node:os";\nexport const o = os;\n',
    forbiddenIn: ["shared/domain/x.ts"],
    allowedIn: ["shared/stores/x.ts"],
  },
  {
    what: "the webhook sender, from the domain",
    code: 'import { HttpWebhookSender } from "../webhooks/http-sender";\nexport const s = HttpWebhookSender;\n',
    forbiddenIn: ["shared/domain/x.ts"],
    allowedIn: ["shared/x.ts"],
  },
  {
    what: "the services, from the domain by a longer path",
    code: 'import type { Services } from "../../shared/services";\nexport type S = Services;\n',
    forbiddenIn: ["shared/domain/x.ts"],
    allowedIn: ["shared/usecases/x.ts"],
  },
  {
    what: "a library not on the domain's list",
    code: 'import Negotiator from "negotiator";\nexport const n = Negotiator;\n',
    forbiddenIn: ["shared/domain/x.ts"],
    allowedIn: ["functions/x.ts"],
  },
];

describe("architecture: the layer rules", () => {
  it.each(cases)("refuse $what where it does not belong, and allow it where it does", async ({ code, forbiddenIn, allowedIn }) => {
    for (const file of forbiddenIn) {
      const found = await problems(file, code);
      expect(found.length, `${file} should refuse it`).toBeGreaterThan(0);
      expect(found.every((p) => /^(no-restricted-|layers\/)/.test(p)), `${file}: ${found.join("; ")}`).toBe(true);
    }
    for (const file of allowedIn) expect(await problems(file, code), `${file} should allow it`).toEqual([]);
  });

  it("count both SQL strings and SQL templates", async () => {
    const found = await problems("shared/usecases/x.ts", 'export const q = "SELECT c.id FROM c";\nexport const t = (n: number) => `SELECT TOP ${n} c.id FROM c`;\n');
    expect(found).toHaveLength(2);
  });

  it("let the domain use other domain modules, zod, node:crypto and each library on its list", async () => {
    const libraries = layers.DOMAIN_LIBRARIES;
    const code =
      ['import { z } from "zod";', 'import { createHash } from "node:crypto";', 'import { nowIso } from "./time";']
        .concat(libraries.map((l, i) => `import * as lib${i} from "${l}";`))
        .join("\n") + `\nexport const all = [z, createHash, nowIso, ${libraries.map((_, i) => `lib${i}`).join(", ")}];\n`;
    expect(await problems("shared/domain/x.ts", code)).toEqual([]);
  });

  it("do not take English for SQL", async () => {
    expect(await problems("shared/usecases/x.ts", 'export const m = "Select the purpose to withdraw";\nexport const n = "selected from: a list";\n')).toEqual([]);
  });

  it("name the same domain libraries as the README's layer table", () => {
    const readme = readFileSync(path.join(ROOT, "README.md"), "utf8");
    const row = readme.split("\n").find((l) => l.startsWith("| `shared/domain/` |"));
    expect(row, "the README's layer table has a shared/domain row").toBeDefined();
    const named = [...row!.split("|")[2]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!).filter((n) => !["./x", "node:crypto"].includes(n));
    expect(named.sort()).toEqual([...layers.DOMAIN_LIBRARIES].sort());
  });
});
