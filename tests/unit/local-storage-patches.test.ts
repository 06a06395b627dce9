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

/**
 * Azurite keeps blob and queue metadata in LokiJS collections with binary indices, and LokiJS uses an index for the
 * first condition of a query only. Azurite looks blobs up by {accountName, containerName, name}: the account's index
 * matched every blob, so each lookup scanned the account, and writing N blobs took time quadratic in N (10,000 blobs
 * in 19 s, the fifth 10,000 in 217 s; a 100,000-person breach writes 200,000 outbox blobs). The project patches
 * LokiJS (patches/lokijs+1.5.12.patch) to take first the indexed equality that matches the fewest documents.
 */
describe("the local blob store's metadata queries", () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const Loki = require("lokijs") as new (name: string) => { addCollection(name: string, opts: { indices: string[] }): { insert(d: object): void; find(q: object): Array<{ name: string }> } };

  it("look a document up through its most selective index, not by scanning what the first condition matched", () => {
    const coll = new Loki("t").addCollection("blobs", { indices: ["accountName", "containerName", "name"] });
    let reads = 0;
    for (let i = 0; i < 2000; i++) {
      const doc = { accountName: "dev", containerName: "outbox" } as { accountName: string; containerName: string; name: string };
      const name = `m-${String(i).padStart(5, "0")}`;
      Object.defineProperty(doc, "name", { enumerable: true, get: () => (reads++, name) });
      coll.insert(doc);
    }
    coll.find({ accountName: "dev", containerName: "outbox", name: "m-00000" });
    reads = 0;
    const found = coll.find({ accountName: "dev", containerName: "outbox", name: "m-01234" });
    expect(found.map((d) => d.name)).toEqual(["m-01234"]);
    expect(reads, "a binary search's reads, not one per document").toBeLessThan(100);
  });

  it("property: answers as the plain AND of its conditions, whatever the order of the query's keys", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ a: fc.constantFrom("x", "y"), b: fc.integer({ min: 0, max: 9 }), c: fc.integer({ min: 0, max: 3 }) }), { maxLength: 60 }), fc.constantFrom("x", "y"), fc.integer({ min: 0, max: 9 }), fc.integer({ min: 0, max: 3 }), (docs, a, b, c) => {
        const coll = new Loki("p").addCollection("d", { indices: ["a", "b"] });
        for (const d of docs) coll.insert({ ...d });
        const want = docs.filter((d) => d.a === a && d.b === b && d.c === c).length;
        expect(coll.find({ a, b, c }).length).toBe(want);
        expect(coll.find({ c, b, a }).length).toBe(want);
      }),
    );
  });
});
