import { Readable } from "node:stream";
import fc from "fast-check";
import { describe, expect, it } from "@jest/globals";
import {
  DEFAULT_SEGMENT_SIZE,
  HEADER_SIZE,
  IntegrityError,
  TAG_SIZE,
  ciphertextSize,
  createDecryptStream,
  createEncryptStream,
  generateDataKey,
  parseHeader,
  plaintextSize,
  segmentCount,
  uploadAssociatedData,
} from "../../../shared/crypto";
import { chunked, drive, encrypt, payload, seq } from "./helpers";

const KiB = 1024;
const MiB = 1024 * KiB;
const S = DEFAULT_SEGMENT_SIZE;
const ad = uploadAssociatedData("tenant-a", "upload-1");
const IRREGULAR = [1, 7, 4096, S - 1, 100_000, 3, S, S + 1, 17];

async function decrypt(key: Buffer, ciphertext: Buffer, chunkSizes: readonly number[]) {
  return drive(createDecryptStream(key, ad), chunked(ciphertext, chunkSizes));
}

describe("round trip", () => {
  const key = generateDataKey();
  const sizes = [0, 1, S - 1, S, S + 1, 2 * S, 5 * MiB + 123];

  for (const size of sizes) {
    it(`plaintext of ${size} bytes`, async () => {
      const plaintext = payload(size);
      const chunkings = size <= S + 1 ? [[1], IRREGULAR, [size || 1]] : [IRREGULAR, [size]];
      for (const inChunks of chunkings) {
        const ciphertext = await encrypt(key, ad, plaintext, {}, inChunks);
        expect(ciphertext.length).toBe(ciphertextSize(size));
        expect(plaintextSize(ciphertext.length)).toBe(size);
        expect((ciphertext.length - HEADER_SIZE - size) / TAG_SIZE).toBe(segmentCount(size));
        for (const outChunks of [[5, 333, S + 16, 1], [ciphertext.length]]) {
          const { received, pushed, error } = await decrypt(key, ciphertext, outChunks);
          expect(error).toBeNull();
          expect(received.equals(plaintext)).toBe(true);
          expect(pushed.equals(plaintext)).toBe(true);
        }
      }
    });
  }

  it("1-byte chunks both ways for a small payload", async () => {
    const plaintext = payload(3 * 100 + 7);
    const ciphertext = await encrypt(key, ad, plaintext, { segmentSize: 100 }, [1]);
    const { received, error } = await drive(createDecryptStream(key, ad), chunked(ciphertext, [1]));
    expect(error).toBeNull();
    expect(received.equals(plaintext)).toBe(true);
  });

  it("accepts Uint8Array chunks and keys", async () => {
    const rawKey = new Uint8Array(generateDataKey());
    const plaintext = payload(1000);
    const enc = createEncryptStream(rawKey, new Uint8Array(ad), { segmentSize: 64 });
    const out = await drive(enc, [plaintext.subarray(0, 10), plaintext.subarray(10)].map((b) => new Uint8Array(b) as Buffer));
    expect(out.error).toBeNull();
    const dec = await drive(createDecryptStream(rawKey, ad), [out.received]);
    expect(dec.received.equals(plaintext)).toBe(true);
  });

  it("never repeats a header: fresh salt and nonce prefix per stream under the same data key", async () => {
    const plaintext = payload(100);
    const a = await encrypt(key, ad, plaintext);
    const b = await encrypt(key, ad, plaintext);
    expect(a.subarray(9, 41).equals(b.subarray(9, 41))).toBe(false);
    expect(a.subarray(41, 48).equals(b.subarray(41, 48))).toBe(false);
    expect(a.subarray(HEADER_SIZE).equals(b.subarray(HEADER_SIZE))).toBe(false);
  });

  it("output does not depend on how the plaintext is chunked", async () => {
    const deterministic = { salt: seq(1, 32), noncePrefix: seq(2, 7) };
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 40 }),
        fc.integer({ min: 0, max: 300 }),
        fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1, maxLength: 8 }),
        async (segmentSize, size, chunkSizes) => {
          const plaintext = seq(size, size);
          const whole = await encrypt(key, ad, plaintext, { segmentSize, deterministic });
          const pieces = await encrypt(key, ad, plaintext, { segmentSize, deterministic }, chunkSizes);
          expect(pieces.equals(whole)).toBe(true);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("size functions", () => {
  it("match what the encryptor writes", async () => {
    const key = generateDataKey();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 0, max: 9 }),
        fc.integer({ min: -3, max: 3 }),
        fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 5 }),
        async (segmentSize, wholeSegments, offset, chunkSizes) => {
          const size = Math.max(0, wholeSegments * segmentSize + offset);
          const ciphertext = await encrypt(key, ad, payload(size), { segmentSize }, chunkSizes);
          expect(ciphertext.length).toBe(ciphertextSize(size, segmentSize));
          expect(plaintextSize(ciphertext.length, segmentSize)).toBe(size);
          const segments = (ciphertext.length - HEADER_SIZE - size) / TAG_SIZE;
          expect(segments).toBe(segmentCount(size, segmentSize));
          expect(segments).toBe(size === 0 ? 1 : Math.ceil(size / segmentSize));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("plaintextSize accepts exactly the sizes ciphertextSize produces", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), (segmentSize) => {
        const bound = HEADER_SIZE + 12 * (segmentSize + TAG_SIZE);
        const produced = new Set<number>();
        for (let p = 0; ciphertextSize(p, segmentSize) <= bound; p++) produced.add(ciphertextSize(p, segmentSize));
        for (let c = 0; c <= bound; c++) {
          if (produced.has(c)) {
            expect(ciphertextSize(plaintextSize(c, segmentSize), segmentSize)).toBe(c);
          } else {
            expect(() => plaintextSize(c, segmentSize)).toThrow(RangeError);
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it("examples at the default segment size", () => {
    expect(ciphertextSize(0)).toBe(HEADER_SIZE + TAG_SIZE);
    expect(ciphertextSize(S)).toBe(HEADER_SIZE + S + TAG_SIZE);
    expect(ciphertextSize(S + 1)).toBe(HEADER_SIZE + S + 1 + 2 * TAG_SIZE);
    expect(segmentCount(1024 * MiB)).toBe(16 * KiB);
    expect(ciphertextSize(2 * 1024 * MiB)).toBe(HEADER_SIZE + 2 * 1024 * MiB + 32 * KiB * TAG_SIZE);
    expect(() => plaintextSize(HEADER_SIZE + S + 2 * TAG_SIZE)).toThrow(RangeError); // empty segment after a full one
    expect(() => plaintextSize(HEADER_SIZE + 15)).toThrow(RangeError);
    expect(() => segmentCount(-1)).toThrow(RangeError);
    expect(() => segmentCount(1.5)).toThrow(RangeError);
    expect(() => segmentCount(10, 0)).toThrow(RangeError);
  });
});

describe("header", () => {
  it("has the documented layout", async () => {
    const ciphertext = await encrypt(generateDataKey(), ad, payload(10), {
      segmentSize: 4096,
      deterministic: { salt: seq(0x40, 32), noncePrefix: seq(0xa0, 7) },
    });
    const header = parseHeader(ciphertext);
    expect(ciphertext.subarray(0, 4).toString("ascii")).toBe("SDS1");
    expect(header.version).toBe(1);
    expect(header.segmentSize).toBe(4096);
    expect(ciphertext.readUInt32BE(5)).toBe(4096);
    expect(header.salt.equals(seq(0x40, 32))).toBe(true);
    expect(header.noncePrefix.equals(seq(0xa0, 7))).toBe(true);
    expect(header.bytes.equals(ciphertext.subarray(0, HEADER_SIZE))).toBe(true);
  });

  it("rejects malformed headers with IntegrityError", () => {
    const good = Buffer.concat([Buffer.from("SDS1"), Buffer.of(1, 0, 1, 0, 0), seq(0, 39)]);
    expect(parseHeader(good).segmentSize).toBe(S);
    const variants: Buffer[] = [
      good.subarray(0, HEADER_SIZE - 1),
      Buffer.concat([Buffer.from("SDS2"), good.subarray(4)]),
      Buffer.concat([good.subarray(0, 4), Buffer.of(2), good.subarray(5)]),
      Buffer.concat([good.subarray(0, 5), Buffer.of(0, 0, 0, 0), good.subarray(9)]),
      Buffer.concat([good.subarray(0, 5), Buffer.of(0xff, 0, 0, 0), good.subarray(9)]),
    ];
    for (const bad of variants) expect(() => parseHeader(bad)).toThrow(IntegrityError);
    expect(() => parseHeader(good, 1024)).toThrow(IntegrityError);
  });
});

describe("argument checks", () => {
  it("rejects bad keys, oversized associated data, bad segment sizes and bad test-only inputs", () => {
    const key = generateDataKey();
    expect(() => createEncryptStream(key.subarray(0, 16), ad)).toThrow(RangeError);
    expect(() => createDecryptStream(Buffer.alloc(33), ad)).toThrow(RangeError);
    expect(() => createEncryptStream(key, Buffer.alloc(995))).toThrow(RangeError);
    expect(() => createEncryptStream(key, Buffer.alloc(994))).not.toThrow();
    expect(() => createEncryptStream(key, ad, { segmentSize: 0 })).toThrow(RangeError);
    expect(() => createEncryptStream(key, ad, { segmentSize: 16 * MiB + 1 })).toThrow(RangeError);
    expect(() => createEncryptStream(key, ad, { deterministic: { salt: seq(0, 31), noncePrefix: seq(0, 7) } })).toThrow(
      RangeError,
    );
  });
});

describe("backpressure", () => {
  /** A source that makes `total` bytes on demand, counting how much was pulled. */
  function source(total: number) {
    let produced = 0;
    const stream = new Readable({
      read() {
        if (produced >= total) return void this.push(null);
        const size = Math.min(16 * KiB, total - produced);
        produced += size;
        this.push(Buffer.alloc(size, produced & 0xff));
      },
    });
    return { stream, produced: () => produced };
  }

  const settle = async () => {
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
  };

  it("the encryptor stops pulling plaintext while its output is not read", async () => {
    const src = source(64 * MiB);
    const enc = createEncryptStream(generateDataKey(), ad);
    src.stream.pipe(enc);
    await settle();
    // Buffers: the source's and the encryptor's writable buffer, one held-back segment, one sealed segment.
    expect(src.produced()).toBeLessThan(8 * S);
    let total = 0;
    enc.on("data", (c: Buffer) => (total += c.length));
    await new Promise((resolve) => enc.on("end", resolve));
    expect(total).toBe(ciphertextSize(64 * MiB));
  });

  it("the decryptor stops pulling ciphertext while its output is not read", async () => {
    const key = generateDataKey();
    const src = source(16 * MiB);
    const enc = createEncryptStream(key, ad);
    const dec = createDecryptStream(key, ad);
    src.stream.pipe(enc).pipe(dec);
    await settle();
    expect(src.produced()).toBeLessThan(16 * S);
    let total = 0;
    dec.on("data", (c: Buffer) => (total += c.length));
    await new Promise((resolve) => dec.on("end", resolve));
    expect(total).toBe(16 * MiB);
  });
});
