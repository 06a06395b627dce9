import { describe, expect, it } from "@jest/globals";
import {
  IntegrityError,
  WRAPPED_KEY_SIZE,
  generateDataKey,
  unwrapDataKey,
  wrapDataKey,
  wrappedKeyAssociatedData,
} from "../../../shared/crypto";

const kek = generateDataKey();
const dataKey = generateDataKey();
const ad = wrappedKeyAssociatedData("tenant-a", "upload-1", "7");

function expectUnwrapFailure(run: () => unknown) {
  let error: unknown = null;
  try {
    run();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(IntegrityError);
  const e = error as IntegrityError;
  expect(e.failure).toBe("wrapped-key");
  for (const secret of [kek, dataKey]) {
    expect(e.message).not.toContain(secret.toString("hex"));
    expect(e.message).not.toContain(secret.toString("base64"));
  }
}

describe("wrapDataKey / unwrapDataKey", () => {
  it("round-trips through the compact base64 form", () => {
    const wrapped = wrapDataKey(kek, dataKey, ad);
    expect(wrapped).toMatch(/^[A-Za-z0-9+/]{82}==$/);
    const bytes = Buffer.from(wrapped, "base64");
    expect(bytes.length).toBe(WRAPPED_KEY_SIZE);
    expect(bytes[0]).toBe(1);
    expect(unwrapDataKey(kek, wrapped, ad).equals(dataKey)).toBe(true);
    expect(unwrapDataKey(kek, bytes, ad).equals(dataKey)).toBe(true);
  });

  it("uses a fresh IV every time", () => {
    expect(wrapDataKey(kek, dataKey, ad)).not.toBe(wrapDataKey(kek, dataKey, ad));
  });

  it("fails with another KEK", () => {
    const wrapped = wrapDataKey(kek, dataKey, ad);
    expectUnwrapFailure(() => unwrapDataKey(generateDataKey(), wrapped, ad));
  });

  it("fails when copied onto another upload, tenant or KEK version", () => {
    const wrapped = wrapDataKey(kek, dataKey, ad);
    for (const other of [
      wrappedKeyAssociatedData("tenant-a", "upload-2", "7"),
      wrappedKeyAssociatedData("tenant-b", "upload-1", "7"),
      wrappedKeyAssociatedData("tenant-a", "upload-1", "8"),
      Buffer.alloc(0),
    ]) {
      expectUnwrapFailure(() => unwrapDataKey(kek, wrapped, other));
    }
  });

  it("fails on any altered byte, and on truncated or extended input", () => {
    const bytes = Buffer.from(wrapDataKey(kek, dataKey, ad), "base64");
    for (let i = 0; i < bytes.length; i++) {
      const altered = Buffer.from(bytes);
      altered[i] = (altered[i] ?? 0) ^ 0x04;
      expectUnwrapFailure(() => unwrapDataKey(kek, altered, ad));
      expectUnwrapFailure(() => unwrapDataKey(kek, altered.toString("base64"), ad));
    }
    expectUnwrapFailure(() => unwrapDataKey(kek, bytes.subarray(0, bytes.length - 1), ad));
    expectUnwrapFailure(() => unwrapDataKey(kek, Buffer.concat([bytes, Buffer.of(0)]), ad));
  });

  it("accepts only the canonical base64 it writes", () => {
    const wrapped = wrapDataKey(kek, dataKey, ad);
    for (const bad of [wrapped.slice(0, -2), ` ${wrapped}`, `${wrapped}\n`, wrapped.replace(/\+/g, "-"), "", "not base64!"]) {
      if (bad === wrapped) continue;
      expectUnwrapFailure(() => unwrapDataKey(kek, bad, ad));
    }
  });

  it("rejects keys of the wrong size", () => {
    expect(() => wrapDataKey(kek.subarray(0, 16), dataKey, ad)).toThrow(RangeError);
    expect(() => wrapDataKey(kek, dataKey.subarray(0, 31), ad)).toThrow(RangeError);
    expect(() => unwrapDataKey(Buffer.alloc(24), wrapDataKey(kek, dataKey, ad), ad)).toThrow(RangeError);
  });
});
