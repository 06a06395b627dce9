/**
 * The test vectors of docs/encryption-format.md. Each vector is checked three ways: the code produces (or
 * accepts) it, a from-scratch implementation of the written rules using node:crypto primitives produces it, and
 * the document contains it. A change to the format therefore fails here until code and document agree again.
 */
import { createCipheriv, createHmac, hkdfSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "@jest/globals";
import {
  createDecryptStream,
  decryptField,
  fieldAssociatedData,
  lookupHash,
  unwrapDataKey,
  uploadAssociatedData,
  wrappedKeyAssociatedData,
} from "../../../shared/crypto";
import { drive, encrypt, seq } from "./helpers";

const spec = readFileSync(join(__dirname, "../../../docs/encryption-format.md"), "utf8");

/** The stream listings of the document (code blocks of "header …" / "segment i …" lines), each as one hex string. */
function specStreamListings(): string[] {
  const listings: string[] = [];
  for (const block of spec.matchAll(/```\n([\s\S]*?)```/g)) {
    const lines = (block[1] ?? "").trim().split("\n");
    if (!lines.every((line) => /^(header|segment \d+)\s/.test(line))) continue;
    listings.push(lines.map((line) => line.replace(/^(header|segment \d+)/, "").replace(/[\s|]/g, "")).join(""));
  }
  return listings;
}

/** Whether the document states this value (hex values may be broken by spaces for reading). */
function specStates(value: string): boolean {
  return spec.includes(value) || spec.replace(/\s+/g, "").includes(value);
}

const dataKey = seq(0x00, 32);
const salt = seq(0x40, 32);
const noncePrefix = seq(0xa0, 7);
const ad = uploadAssociatedData("tenant-0001", "upload-0001");

const HEADER_V1 = "534453310100010000404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5fa0a1a2a3a4a5a6";
const HEADER_V2 = "534453310100000010404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5fa0a1a2a3a4a5a6";

const vectors = [
  {
    name: "vector 1: one short segment",
    segmentSize: 65536,
    plaintext: Buffer.from("Hello, data subject!", "ascii"),
    ciphertext: HEADER_V1 + "76d7936337ee58abb15a0f69d8486891febb8b78" + "c63aea2921c156ea3fdcccde81c0e6a4",
  },
  {
    name: "vector 2: three segments, the last one short",
    segmentSize: 16,
    plaintext: Buffer.from("0123456789abcdefghijklmnopqrstuvwxyzABCD", "ascii"),
    ciphertext:
      HEADER_V2 +
      "eafd3e683554a9caf3e54ceed293313a" + "cec587c2d2904d2c18795986096322e5" +
      "56ef4ebe863fe4cde893d95f417dcaad" + "1486183f98b0ab068697f3c0ca51ff38" +
      "94dabfc7bc933cde" + "6513a81ebb66d19293c863f2e31d296d",
  },
  {
    name: "vector 3: empty plaintext",
    segmentSize: 65536,
    plaintext: Buffer.alloc(0),
    ciphertext: HEADER_V1 + "756de5063d9f30af7d0dd6bbc249e141",
  },
];

/** The SDS1 rules exactly as the document states them, in one function. */
function referenceEncrypt(plaintext: Buffer, segmentSize: number): Buffer {
  const header = Buffer.alloc(48);
  header.write("SDS1", 0, "ascii");
  header[4] = 1;
  header.writeUInt32BE(segmentSize, 5);
  salt.copy(header, 9);
  noncePrefix.copy(header, 41);
  const info = Buffer.concat([Buffer.from("safedata/stream/v1/segment-key", "ascii"), ad]);
  const key = Buffer.from(hkdfSync("sha256", dataKey, salt, info, 32));
  const count = plaintext.length === 0 ? 1 : Math.ceil(plaintext.length / segmentSize);
  const parts = [header];
  for (let i = 0; i < count; i++) {
    const nonce = Buffer.concat([noncePrefix, Buffer.alloc(4), Buffer.of(i === count - 1 ? 1 : 0)]);
    nonce.writeUInt32BE(i, 7);
    const cipher = createCipheriv("aes-256-gcm", key, nonce);
    cipher.setAAD(header);
    parts.push(cipher.update(plaintext.subarray(i * segmentSize, (i + 1) * segmentSize)), cipher.final(), cipher.getAuthTag());
  }
  return Buffer.concat(parts);
}

describe("docs/encryption-format.md test vectors", () => {
  it("associated data encoding and segment key", () => {
    const adHex = "000675706c6f6164000b74656e616e742d30303031000b75706c6f61642d30303031";
    expect(ad.toString("hex")).toBe(adHex);
    expect(specStates(adHex)).toBe(true);
    const info = Buffer.concat([Buffer.from("safedata/stream/v1/segment-key", "ascii"), ad]);
    const key = Buffer.from(hkdfSync("sha256", dataKey, salt, info, 32)).toString("hex");
    expect(key).toBe("3bc4fdde94eb370a99607c165c6082401a87a35ff56c7cb8b282649bbe9e2818");
    expect(specStates(key)).toBe(true);
  });

  it("the document lists exactly these stream vectors, in order", () => {
    expect(specStreamListings()).toEqual(vectors.map((v) => v.ciphertext));
  });

  for (const v of vectors) {
    it(v.name, async () => {
      expect(referenceEncrypt(v.plaintext, v.segmentSize).toString("hex")).toBe(v.ciphertext);
      const written = await encrypt(dataKey, ad, v.plaintext, {
        segmentSize: v.segmentSize,
        deterministic: { salt, noncePrefix },
      });
      expect(written.toString("hex")).toBe(v.ciphertext);
      const { received, error } = await drive(createDecryptStream(dataKey, ad), [Buffer.from(v.ciphertext, "hex")]);
      expect(error).toBeNull();
      expect(received.equals(v.plaintext)).toBe(true);
    });
  }

  it("wrapped key", () => {
    const wrapped = "AcDBwsPExcbHyMnKy2Q9goG4qOXECiY9RE6sPj850BhS9hXkQjH3tqYzynOc5GMtJlsH87iyq4cYwAX/dg==";
    const wrapAd = wrappedKeyAssociatedData("tenant-0001", "upload-0001", "3");
    expect(wrapAd.toString("hex")).toBe("000a75706c6f61642d6b6579000b74656e616e742d30303031000b75706c6f61642d30303031000133");
    expect(specStates(wrapAd.toString("hex"))).toBe(true);
    expect(specStates(wrapped)).toBe(true);
    expect(unwrapDataKey(seq(0x80, 32), wrapped, wrapAd).equals(dataKey)).toBe(true);
    // The same bytes from the written rules.
    const cipher = createCipheriv("aes-256-gcm", seq(0x80, 32), seq(0xc0, 12));
    cipher.setAAD(Buffer.concat([Buffer.of(1), wrapAd]));
    const expected = Buffer.concat([Buffer.of(1), seq(0xc0, 12), cipher.update(dataKey), cipher.final(), cipher.getAuthTag()]);
    expect(expected.toString("base64")).toBe(wrapped);
  });

  it("encrypted field", () => {
    const field = "v1.0NHS09TV1tfY2drb.wfXCM7bCXRHNQuxWUTCoR0aELmERb2z7DXKDpmM1Bfvb7q8F7E_j";
    const fieldAd = fieldAssociatedData("tenant-0001", "subject-0001", "email");
    expect(specStates(fieldAd.toString("hex"))).toBe(true);
    expect(specStates(field)).toBe(true);
    expect(decryptField(seq(0x80, 32), field, fieldAd)).toBe("anna.schmidt@example.eu");
    const cipher = createCipheriv("aes-256-gcm", seq(0x80, 32), seq(0xd0, 12));
    cipher.setAAD(Buffer.concat([Buffer.from("v1", "ascii"), fieldAd]));
    const sealed = Buffer.concat([cipher.update("anna.schmidt@example.eu", "utf8"), cipher.final(), cipher.getAuthTag()]);
    expect(`v1.${seq(0xd0, 12).toString("base64url")}.${sealed.toString("base64url")}`).toBe(field);
  });

  it("lookup hash", () => {
    const hash = "bc8d7758ed12c0fb08aaaf01464223fa6bd20fd053a78351e74f4c04f09db80f";
    expect(specStates(hash)).toBe(true);
    expect(lookupHash(seq(0x60, 32), "anna.schmidt@example.eu")).toBe(hash);
    expect(createHmac("sha256", seq(0x60, 32)).update("anna.schmidt@example.eu").digest("hex")).toBe(hash);
  });
});
