/**
 * The layer rules (eslint.layers.cjs, README "Architecture") catch what they are meant to: each forbidden import or
 * SQL text is linted in the folder where it is forbidden, and the same code passes where it is allowed. `npm test`
 * also lints the real code with these rules.
 */
import path from "node:path";
import { describe, it } from "@jest/globals";
import { ESLint, type Linter } from "eslint";
import tseslint from "typescript-eslint";
import { expect } from "../helpers/expect";

const ROOT = path.join(__dirname, "../..");
// eslint-disable-next-line @typescript-eslint/no-require-imports
const layers = require(path.join(ROOT, "eslint.layers.cjs")) as Linter.Config[];

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
];

describe("architecture: the layer rules", () => {
  it.each(cases)("refuse $what where it does not belong, and allow it where it does", async ({ code, forbiddenIn, allowedIn }) => {
    for (const file of forbiddenIn) {
      const found = await problems(file, code);
      expect(found.length, `${file} should refuse it`).toBeGreaterThan(0);
      expect(found.every((p) => p.startsWith("no-restricted-")), `${file}: ${found.join("; ")}`).toBe(true);
    }
    for (const file of allowedIn) expect(await problems(file, code), `${file} should allow it`).toEqual([]);
  });

  it("count both SQL strings and SQL templates", async () => {
    const found = await problems("shared/usecases/x.ts", 'export const q = "SELECT c.id FROM c";\nexport const t = (n: number) => `SELECT TOP ${n} c.id FROM c`;\n');
    expect(found).toHaveLength(2);
  });
});
