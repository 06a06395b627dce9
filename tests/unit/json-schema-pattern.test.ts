/**
 * Regex flags in the OpenAPI document: the generator writes a zod regex with flags as `source/flags`, which as a JSON
 * Schema pattern matches nothing. jsonSchemaPattern gives a flag-free pattern that matches what the flagged RegExp
 * matches (the media-type pattern of uploads is the case that exists).
 */
import fc from "fast-check";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { MIME_TYPE } from "../../shared/domain/uploads";
import { jsonSchemaPattern } from "../../shared/http/json-schema-pattern";

/** What the generator writes for a RegExp: its toString without the slashes around the source. */
const asGenerated = (r: RegExp) => r.toString().replace(/^\/|\/$/g, "");

/** Strings near `r`'s language: samples of it with letters re-cased, and arbitrary printable ones. */
function near(r: RegExp): fc.Arbitrary<string> {
  const reCase = (s: string, flips: boolean[]) => [...s].map((c, i) => (flips[i % flips.length] ? c.toUpperCase() : c.toLowerCase())).join("");
  return fc.oneof(
    fc.tuple(fc.stringMatching(new RegExp(r.source)), fc.array(fc.boolean(), { minLength: 1, maxLength: 8 })).map(([s, f]) => reCase(s, f)),
    fc.string({ unit: fc.constantFrom(..."aAbBzZ09;=/-_ \t\"\\[]{}().xX".split("")), maxLength: 20 }),
    fc.string({ maxLength: 20 }),
  );
}

describe("jsonSchemaPattern", () => {
  it("leaves a pattern without flags as it is, escaped slashes included", () => {
    for (const p of ["^up-[a-z2-7]{26}$", "^a\\/i", "^[0-9a-f]{64}$", "^a\\\\\\/i$"]) expect(jsonSchemaPattern(p), p).toBe(p);
  });

  it("the generator's form of a case-insensitive RegExp matches what the RegExp matches", () => {
    const cases = [MIME_TYPE, /^ab[c-e]x$/i, /^[^a-c]+$/i, /^[\x23-\x5b]+z$/i, /^(?:bytes|items)=\d+$/i, /^(?<unit>[a-z]+)\x41$/i, /^\u0062\x61\tq$/i];
    for (const r of cases) {
      const generated = asGenerated(r);
      expect(new RegExp(generated).test("x"), `${generated} is broken as given`).toBe(false);
      const pattern = new RegExp(jsonSchemaPattern(generated));
      fc.assert(
        fc.property(near(r), (s) => {
          expect(pattern.test(s), `${r} on ${JSON.stringify(s)}`).toBe(r.test(s));
        }),
        { numRuns: 300 },
      );
    }
  });

  it("the s flag: a dot matches line breaks too", () => {
    const p = new RegExp(jsonSchemaPattern(asGenerated(/^a.b$/s)));
    expect(p.test("a\nb")).toBe(true);
    expect(p.test("a\nbc")).toBe(false);
  });
});
