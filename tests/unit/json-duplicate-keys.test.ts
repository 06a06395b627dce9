/**
 * The duplicate-key scan of JSON bodies (shared/http/endpoint.ts): over generated JSON texts, it finds a repeated key
 * exactly when some object has one, at any depth, however the keys and the text around them are written.
 */
import fc from "fast-check";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { duplicateKeyProblem } from "../../shared/http/endpoint";

/** A JSON value whose objects are lists of entries, so that a list may name a key twice. */
type Node = null | boolean | number | string | Node[] | { entries: Array<[string, Node]> };

const keyText = fc.oneof(fc.constantFrom("a", "b", "name", "__proto__", "constructor", "", "é", "\u0000", '"', "\\"), fc.string({ maxLength: 4 }));

const node: fc.Arbitrary<Node> = fc.letrec<{ node: Node }>((tie) => ({
  node: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom<Node>(null, true, false, 0, -1.5e3, "x", '"{,}[]:"'),
    fc.array(tie("node"), { maxLength: 4 }),
    fc.record({ entries: fc.array(fc.tuple(keyText, tie("node")), { maxLength: 5 }) }),
  ),
})).node;

/** Writes a string as JSON, escaping some of its characters as \\uXXXX (the same string, spelled differently). */
function stringText(s: string, escapeMask: number): string {
  const plain = JSON.stringify(s);
  if (escapeMask % 3 !== 0) return plain;
  return '"' + [...s].map((ch) => (ch.charCodeAt(0) < 0x80 && /[A-Za-z]/.test(ch) ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}` : JSON.stringify(ch).slice(1, -1))).join("") + '"';
}

function text(n: Node, space: string, salt: number): string {
  if (Array.isArray(n)) return `[${space}${n.map((c, i) => text(c, space, salt + i)).join(`,${space}`)}${space}]`;
  if (n !== null && typeof n === "object") {
    return `{${space}${n.entries.map(([k, v], i) => `${stringText(k, salt + i)}${space}:${space}${text(v, space, salt + i + 1)}`).join(`,${space}`)}${space}}`;
  }
  return typeof n === "string" ? stringText(n, salt) : JSON.stringify(n);
}

function hasDuplicate(n: Node): boolean {
  if (Array.isArray(n)) return n.some(hasDuplicate);
  if (n !== null && typeof n === "object") {
    const keys = n.entries.map(([k]) => k);
    return new Set(keys).size !== keys.length || n.entries.some(([, v]) => hasDuplicate(v));
  }
  return false;
}

describe("duplicate keys in JSON text", () => {
  it("are found exactly when an object repeats a key, at any depth and however spelled", () => {
    fc.assert(
      fc.property(node, fc.constantFrom("", " ", "\n  ", "\t"), fc.nat(), (n, space, salt) => {
        const json = text(n, space, salt);
        JSON.parse(json); // the generator writes valid JSON
        expect(duplicateKeyProblem(json) !== undefined, json).toBe(hasDuplicate(n));
      }),
      { numRuns: 2000 },
    );
  });

  it("never reports JSON that JSON.stringify wrote", () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => expect(duplicateKeyProblem(JSON.stringify(v))).toBeUndefined()));
  });
});
