import fc from "fast-check";
import { describe, expect, it } from "@jest/globals";
import {
  IntegrityError,
  decryptField,
  encryptField,
  fieldAssociatedData,
  generateDataKey,
  lookupHash,
  normaliseEmail,
} from "../../../shared/crypto";

const key = generateDataKey();
const ad = fieldAssociatedData("tenant-a", "subject-1", "email");

function expectFieldFailure(run: () => unknown) {
  let error: unknown = null;
  try {
    run();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(IntegrityError);
  expect((error as IntegrityError).failure).toBe("field");
  expect((error as IntegrityError).message).not.toContain(key.toString("hex"));
}

describe("encryptField / decryptField", () => {
  it("round-trips any well-formed string", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (text) => {
        const encrypted = encryptField(key, text, ad);
        expect(encrypted).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22,}$/);
        expect(decryptField(key, encrypted, ad)).toBe(text);
      }),
    );
  });

  it("round-trips typical values", () => {
    for (const text of ["", "anna.schmidt@example.eu", "Lønseddel 2026 – Ærø.pdf", "dpo@bücher.example", "🙂 ok"]) {
      expect(decryptField(key, encryptField(key, text, ad), ad)).toBe(text);
    }
  });

  it("uses a fresh IV every time", () => {
    expect(encryptField(key, "same", ad)).not.toBe(encryptField(key, "same", ad));
  });

  it("fails with another key or when copied to another record, tenant or field", () => {
    const encrypted = encryptField(key, "anna.schmidt@example.eu", ad);
    expectFieldFailure(() => decryptField(generateDataKey(), encrypted, ad));
    for (const other of [
      fieldAssociatedData("tenant-a", "subject-2", "email"),
      fieldAssociatedData("tenant-b", "subject-1", "email"),
      fieldAssociatedData("tenant-a", "subject-1", "name"),
    ]) {
      expectFieldFailure(() => decryptField(key, encrypted, other));
    }
  });

  it("fails on any altered character", () => {
    const encrypted = encryptField(key, "anna.schmidt@example.eu", ad);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (let i = 3; i < encrypted.length; i++) {
      const c = encrypted[i];
      if (c === ".") continue;
      const replacement = alphabet[(alphabet.indexOf(c ?? "A") + 1) % alphabet.length];
      expectFieldFailure(() => decryptField(key, encrypted.slice(0, i) + replacement + encrypted.slice(i + 1), ad));
    }
  });

  it("rejects malformed input", () => {
    const encrypted = encryptField(key, "x", ad);
    const [, iv, sealed] = encrypted.split(".");
    for (const bad of [
      "",
      "v1",
      `v2.${iv}.${sealed}`,
      `v1.${iv}`,
      `v1.${iv}.${sealed}.x`,
      `v1.${iv}.${sealed}=`,
      `v1.${iv}A.${sealed}`,
      `v1.${iv}.${sealed?.slice(0, 10)}`,
      `v1.${sealed}.${iv}`,
      `v1.${iv}.${sealed?.replace(/[-_]/g, "+")}+`,
    ]) {
      expectFieldFailure(() => decryptField(key, bad, ad));
    }
  });

  it("refuses strings with lone surrogates and keys of the wrong size", () => {
    expect(() => encryptField(key, "bad \ud800 string", ad)).toThrow(TypeError);
    expect(() => encryptField(key.subarray(0, 16), "x", ad)).toThrow(RangeError);
  });
});

describe("normaliseEmail", () => {
  it("trims, lower-cases the whole address and composes to NFC", () => {
    expect(normaliseEmail("  Anna.Schmidt@Example.EU \n")).toBe("anna.schmidt@example.eu");
    expect(normaliseEmail("J\u00D6RG@example.de")).toBe("j\u00F6rg@example.de");
    expect(normaliseEmail("jo\u0308rg@example.de")).toBe("j\u00F6rg@example.de"); // decomposed ö
    expect(normaliseEmail("first.last+tag@example.com")).toBe("first.last+tag@example.com");
  });

  it("is idempotent", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), (s) => {
        const once = normaliseEmail(s);
        expect(normaliseEmail(once)).toBe(once);
      }),
      { numRuns: 500 },
    );
  });
});

describe("lookupHash", () => {
  const secret = generateDataKey();

  it("is a stable 64-character hex HMAC, equal for every spelling of one address", () => {
    const hash = lookupHash(secret, normaliseEmail("Anna.Schmidt@Example.eu"));
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(lookupHash(secret, normaliseEmail(" anna.schmidt@EXAMPLE.EU"))).toBe(hash);
    expect(lookupHash(generateDataKey(), "anna.schmidt@example.eu")).not.toBe(hash);
    expect(lookupHash(secret, "anna.schmidt2@example.eu")).not.toBe(hash);
  });

  it("refuses input that is not normalised, empty, or a secret of the wrong size", () => {
    expect(() => lookupHash(secret, "Anna@example.eu")).toThrow(RangeError);
    expect(() => lookupHash(secret, " anna@example.eu")).toThrow(RangeError);
    expect(() => lookupHash(secret, "jo\u0308rg@example.de")).toThrow(RangeError);
    expect(() => lookupHash(secret, "")).toThrow(RangeError);
    expect(() => lookupHash(secret.subarray(0, 16), "anna@example.eu")).toThrow(RangeError);
  });
});
