/**
 * Every way of damaging a stored SDS1 object must end the decryption with IntegrityError, and the decryptor must
 * never have released plaintext of the damaged segment or any later one: what it pushed must be exactly the
 * plaintext of the intact segments before the damage.
 */
import { beforeAll, describe, it } from "@jest/globals";
import { expect } from "../../helpers/expect";
import {
  HEADER_SIZE,
  IntegrityError,
  TAG_SIZE,
  createDecryptStream,
  generateDataKey,
  uploadAssociatedData,
  type IntegrityFailure,
} from "../../../shared/crypto";
import { chunked, drive, encrypt, payload } from "./helpers";

const S = 256;
const SEALED = S + TAG_SIZE;
const ad = uploadAssociatedData("tenant-a", "upload-1");
const otherAd = uploadAssociatedData("tenant-a", "upload-2");
const key = generateDataKey();
/** Six segments: five full ones and a last one of 100 bytes. */
const plaintext = payload(5 * S + 100);

/** Byte offset of segment i inside the ciphertext. */
const at = (i: number) => HEADER_SIZE + i * SEALED;

function segments(ciphertext: Buffer): { header: Buffer; segs: Buffer[] } {
  const segs: Buffer[] = [];
  for (let off = HEADER_SIZE; off < ciphertext.length; off += SEALED) segs.push(ciphertext.subarray(off, off + SEALED));
  return { header: ciphertext.subarray(0, HEADER_SIZE), segs };
}

function flip(data: Buffer, offset: number): Buffer {
  const copy = Buffer.from(data);
  copy[offset] = (copy[offset] ?? 0) ^ 0x01;
  return copy;
}

/** Segment list by index, e.g. pick(segs, 0, 1, 3). */
function pick(segs: Buffer[], ...indices: number[]): Buffer[] {
  return indices.map((i) => {
    const s = segs[i];
    if (s === undefined) throw new Error(`no segment ${i}`);
    return s;
  });
}

const CHUNKINGS: number[][] = [[1_000_000], [1, 3, 100, SEALED, 7, 999], [SEALED], [17]];

async function expectFailure(
  damaged: Buffer,
  expected: { segment: number | null; failure?: IntegrityFailure; intactSegments: number },
  decryptKey: Buffer = key,
  decryptAd: Buffer = ad,
) {
  for (const sizes of CHUNKINGS) {
    const { pushed, received, error } = await drive(createDecryptStream(decryptKey, decryptAd), chunked(damaged, sizes));
    expect(error).toBeInstanceOf(IntegrityError);
    const e = error as IntegrityError;
    expect(e.segmentIndex).toBe(expected.segment);
    if (expected.failure !== undefined) expect(e.failure).toBe(expected.failure);
    // Nothing from the damaged segment or later ever left the decryptor…
    expect(pushed.equals(plaintext.subarray(0, expected.intactSegments * S))).toBe(true);
    // …and what a consumer saw is a prefix of that.
    expect(pushed.subarray(0, received.length).equals(received)).toBe(true);
    // The message names no secrets.
    expect(e.message).not.toContain(key.toString("hex"));
    expect(e.message).not.toContain(key.toString("base64"));
  }
}

describe("tampering and truncation are detected", () => {
  // Six segments: five full ones and a last one of 100 bytes.
  const last = 5;
  let ciphertext: Buffer;
  let header: Buffer;
  let segs: Buffer[];
  beforeAll(async () => {
    ciphertext = await encrypt(key, ad, plaintext, { segmentSize: S });
    ({ header, segs } = segments(ciphertext));
  });

  it("has the expected shape", () => {
    expect(segs).toHaveLength(6);
    expect(segs[last]?.length).toBe(100 + TAG_SIZE);
  });

  it("a flipped bit anywhere in the header", async () => {
    for (let offset = 0; offset < HEADER_SIZE; offset++) {
      const { pushed, error } = await drive(createDecryptStream(key, ad), [flip(ciphertext, offset)]);
      expect(error, `header offset ${offset}`).toBeInstanceOf(IntegrityError);
      expect(pushed.length).toBe(0);
    }
  });

  it("a flipped bit in a middle segment's ciphertext", async () => {
    await expectFailure(flip(ciphertext, at(2) + 10), { segment: 2, failure: "segment", intactSegments: 2 });
  });

  it("a flipped bit in a middle segment's tag", async () => {
    await expectFailure(flip(ciphertext, at(3) + SEALED - 1), { segment: 3, failure: "segment", intactSegments: 3 });
  });

  it("a flipped bit in the last segment's tag or ciphertext", async () => {
    await expectFailure(flip(ciphertext, ciphertext.length - 1), { segment: last, intactSegments: last });
    await expectFailure(flip(ciphertext, at(last)), { segment: last, intactSegments: last });
  });

  it("a flipped bit at positions throughout the segments names the right segment", async () => {
    for (let offset = HEADER_SIZE; offset < ciphertext.length; offset += 7) {
      const segment = Math.floor((offset - HEADER_SIZE) / SEALED);
      const { pushed, error } = await drive(createDecryptStream(key, ad), [flip(ciphertext, offset)]);
      expect(error).toBeInstanceOf(IntegrityError);
      expect((error as IntegrityError).segmentIndex).toBe(segment);
      expect(pushed.equals(plaintext.subarray(0, segment * S))).toBe(true);
    }
  });

  it("truncation in the middle of a segment", async () => {
    await expectFailure(ciphertext.subarray(0, at(3) + 100), { segment: 3, failure: "segment", intactSegments: 3 });
    await expectFailure(ciphertext.subarray(0, at(3) + 5), { segment: 3, failure: "truncated", intactSegments: 3 });
    await expectFailure(ciphertext.subarray(0, ciphertext.length - 1), { segment: last, intactSegments: last });
  });

  it("truncation at a segment boundary before the last segment", async () => {
    // The new final segment was sealed as "not last", so it fails when opened as the last one.
    await expectFailure(ciphertext.subarray(0, at(4)), { segment: 3, failure: "segment", intactSegments: 3 });
    await expectFailure(ciphertext.subarray(0, at(last)), { segment: last - 1, intactSegments: last - 1 });
    await expectFailure(ciphertext.subarray(0, at(1)), { segment: 0, intactSegments: 0 });
  });

  it("truncation at or inside the header, and empty input", async () => {
    await expectFailure(ciphertext.subarray(0, HEADER_SIZE), { segment: 0, failure: "truncated", intactSegments: 0 });
    await expectFailure(ciphertext.subarray(0, 20), { segment: null, failure: "truncated", intactSegments: 0 });
    const { error } = await drive(createDecryptStream(key, ad), []);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as IntegrityError).failure).toBe("truncated");
  });

  it("a dropped segment", async () => {
    await expectFailure(Buffer.concat([header, ...pick(segs, 0, 1, 3, 4, 5)]), { segment: 2, intactSegments: 2 });
    await expectFailure(Buffer.concat([header, ...pick(segs, 1, 2, 3, 4, 5)]), { segment: 0, intactSegments: 0 });
    await expectFailure(Buffer.concat([header, ...pick(segs, 0, 1, 2, 3, 5)]), { segment: 4, intactSegments: 4 });
  });

  it("two segments swapped", async () => {
    await expectFailure(Buffer.concat([header, ...pick(segs, 0, 2, 1, 3, 4, 5)]), { segment: 1, intactSegments: 1 });
    await expectFailure(Buffer.concat([header, ...pick(segs, 0, 1, 2, 4, 3, 5)]), { segment: 3, intactSegments: 3 });
  });

  it("a duplicated segment", async () => {
    await expectFailure(Buffer.concat([header, ...pick(segs, 0, 1, 2, 2, 3, 4, 5)]), { segment: 3, intactSegments: 3 });
    await expectFailure(Buffer.concat([header, ...pick(segs, 0, 1, 2, 3, 4, 5, 5)]), { segment: last, intactSegments: last });
  });

  it("trailing bytes after the last segment", async () => {
    for (const extra of [1, 15, 16, 17, S, SEALED, 3 * SEALED]) {
      await expectFailure(Buffer.concat([ciphertext, payload(extra)]), { segment: last, intactSegments: last });
    }
  });

  it("trailing bytes after a plaintext that fills its last segment exactly", async () => {
    const exact = payload(4 * S);
    const ct = await encrypt(key, ad, exact, { segmentSize: S });
    for (const extra of [1, 16, SEALED]) {
      const { pushed, error } = await drive(createDecryptStream(key, ad), [Buffer.concat([ct, payload(extra)])]);
      expect(error).toBeInstanceOf(IntegrityError);
      expect((error as IntegrityError).segmentIndex).toBe(3);
      expect(pushed.equals(exact.subarray(0, 3 * S))).toBe(true);
    }
    // And dropping its full last segment is caught too.
    const { pushed, error } = await drive(createDecryptStream(key, ad), [ct.subarray(0, at(3))]);
    expect((error as IntegrityError).segmentIndex).toBe(2);
    expect(pushed.equals(exact.subarray(0, 2 * S))).toBe(true);
  });

  it("a segment spliced in from another upload under the same data key", async () => {
    const other = segments(await encrypt(key, otherAd, plaintext, { segmentSize: S }));
    await expectFailure(Buffer.concat([header, ...pick(segs, 0, 1), ...pick(other.segs, 2), ...pick(segs, 3, 4, 5)]), {
      segment: 2,
      intactSegments: 2,
    });
    await expectFailure(Buffer.concat([header, ...pick(segs, 0, 1, 2, 3, 4), ...pick(other.segs, 5)]), {
      segment: last,
      intactSegments: last,
    });
  });

  it("a segment spliced in from a retried encryption of the same upload (same key and associated data)", async () => {
    const retry = segments(await encrypt(key, ad, plaintext, { segmentSize: S }));
    await expectFailure(Buffer.concat([header, ...pick(segs, 0, 1), ...pick(retry.segs, 2), ...pick(segs, 3, 4, 5)]), {
      segment: 2,
      intactSegments: 2,
    });
    // The retry's header on this upload's segments fails at once.
    await expectFailure(Buffer.concat([retry.header, ...segs]), { segment: 0, intactSegments: 0 });
  });

  it("a segment spliced in from an upload under another data key", async () => {
    const foreign = segments(await encrypt(generateDataKey(), ad, plaintext, { segmentSize: S }));
    await expectFailure(Buffer.concat([header, ...pick(segs, 0), ...pick(foreign.segs, 1), ...pick(segs, 2, 3, 4, 5)]), {
      segment: 1,
      intactSegments: 1,
    });
  });

  it("the wrong data key or the wrong associated data", async () => {
    await expectFailure(ciphertext, { segment: 0, intactSegments: 0 }, generateDataKey(), ad);
    await expectFailure(ciphertext, { segment: 0, intactSegments: 0 }, key, otherAd);
  });
});

describe("tampering at the default segment size", () => {
  it("a flipped bit in the middle segment of three releases only the first", async () => {
    const big = payload(2 * 65536 + 5);
    const ct = await encrypt(key, ad, big);
    const damaged = flip(ct, HEADER_SIZE + (65536 + TAG_SIZE) + 1000);
    for (const sizes of [[damaged.length], [65536], [4096, 1, 70_000]]) {
      const { pushed, error } = await drive(createDecryptStream(key, ad), chunked(damaged, sizes));
      expect(error).toBeInstanceOf(IntegrityError);
      expect((error as IntegrityError).segmentIndex).toBe(1);
      expect(pushed.equals(big.subarray(0, 65536))).toBe(true);
    }
  });
});
