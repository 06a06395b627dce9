/**
 * The local Cosmos server (@vercel/cosmosdb-server) answers SQL through @zeit/cosmosdb-query, which compiles a query to
 * JavaScript. As published (0.7.2), the compiled code gathered the documents with `reduce(($, c) => [...$, {c}], [])`:
 * a new array per document, so every query took time quadratic in the container's size (3 s at 20,000 documents,
 * over the SDK's 60-second timeout at 100,000: the 100,000-person breach benchmark failed on it). The project patches
 * it (patches/@zeit+cosmosdb-query+0.7.2.patch, applied by patch-package on `npm ci`) to append in place. These tests
 * fail when the patch is not applied, and check that the patched compiler answers as the plain rules of SQL say.
 */
import { describe, it } from "@jest/globals";
import fc from "fast-check";
import { expect } from "../helpers/expect";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const compile = (require("@zeit/cosmosdb-query") as { default: (sql: string) => { code: string; exec(docs: unknown[], opts?: { parameters?: Array<{ name: string; value: unknown }> }): { result: unknown[] } } }).default;

/** Query shapes the stores use: filters, TOP with ORDER BY, projections, JOIN, aggregates. */
const SHAPES = [
  "SELECT * FROM c WHERE c.tenantId = @t AND c.type = 'x'",
  "SELECT TOP 5 c.id, c.n FROM c WHERE c.tenantId = @t AND c.n >= @min ORDER BY c.id ASC",
  "SELECT VALUE COUNT(1) FROM c WHERE c.tenantId = @t",
  "SELECT c.id, tag FROM c JOIN tag IN c.tags WHERE c.tenantId = @t",
];

describe("the local Cosmos server's query compiler", () => {
  it("gathers documents in place, not by copying the array once per document (the patch is applied)", () => {
    for (const sql of SHAPES) {
      const code = compile(sql).code;
      expect(code, sql).not.toMatch(/\[\s*\.\.\.\$\s*,/);
      expect(code, sql).toContain("$.push(");
    }
  });

  it("property: answers filters, TOP with ORDER BY, COUNT and JOIN as the rules of SQL say", () => {
    const doc = fc.record({
      tenantId: fc.constantFrom("a", "b"),
      type: fc.constantFrom("x", "y"),
      n: fc.integer({ min: 0, max: 20 }),
      tags: fc.array(fc.constantFrom("p", "q", "r"), { maxLength: 3 }),
    });
    fc.assert(
      fc.property(fc.array(doc, { maxLength: 40 }), fc.integer({ min: 0, max: 20 }), (raw, min) => {
        const docs = raw.map((d, i) => ({ ...d, id: `d${String(i).padStart(3, "0")}`, _rid: `r${i}` }));
        const params = [
          { name: "@t", value: "a" },
          { name: "@min", value: min },
        ];
        const run = (sql: string) => compile(sql).exec(docs, { parameters: params }).result;
        const mine = docs.filter((d) => d.tenantId === "a");
        expect(run(SHAPES[0]!)).toEqual(mine.filter((d) => d.type === "x"));
        expect(run(SHAPES[1]!)).toEqual(
          mine
            .filter((d) => d.n >= min)
            .sort((p, q) => p.id.localeCompare(q.id))
            .slice(0, 5)
            .map((d) => ({ id: d.id, n: d.n })),
        );
        expect(run(SHAPES[2]!)).toEqual([mine.length]);
        expect(run(SHAPES[3]!)).toEqual(mine.flatMap((d) => d.tags.map((tag) => ({ id: d.id, tag }))));
      }),
    );
  });
});
