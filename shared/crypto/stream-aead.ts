/**
 * Streaming authenticated encryption of upload payloads (format "SDS1", specified in docs/encryption-format.md).
 *
 * The plaintext is cut into fixed-size segments (64 KiB by default), each sealed with AES-256-GCM under a key
 * derived from the upload's data key, a per-stream random salt and the associated data (tenant id, upload id).
 * Each segment's nonce carries its index and whether it is the last one, so reordering, dropping, duplicating
 * and truncating segments are all detected, and a decryptor releases a segment's plaintext only after its tag
 * has verified. Memory use is about one segment per stream, whatever the payload size.
 */
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, randomBytes, type KeyObject } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { ChunkQueue } from "./chunk-queue";
import { IntegrityError } from "./errors";

/** ASCII "SDS1": identifies a safedata stream. */
export const STREAM_MAGIC: Readonly<Buffer> = Buffer.from("SDS1", "ascii");
export const STREAM_VERSION = 1;
/** magic(4) ‖ version(1) ‖ segment size(4) ‖ salt(32) ‖ nonce prefix(7). */
export const HEADER_SIZE = 48;
export const SALT_SIZE = 32;
export const NONCE_PREFIX_SIZE = 7;
export const TAG_SIZE = 16;
export const DATA_KEY_SIZE = 32;
export const DEFAULT_SEGMENT_SIZE = 64 * 1024;
export const MIN_SEGMENT_SIZE = 1;
/** Upper bound on the plaintext segment size, which bounds a decryptor's memory whatever a header claims. */
export const MAX_SEGMENT_SIZE = 16 * 1024 * 1024;
/** The nonce counter is 32 bits wide. */
export const MAX_SEGMENTS = 2 ** 32;

const OFFSET_VERSION = 4;
const OFFSET_SEGMENT_SIZE = 5;
const OFFSET_SALT = 9;
const OFFSET_NONCE_PREFIX = OFFSET_SALT + SALT_SIZE;

/** HKDF info label; the associated data follows it. */
const SEGMENT_KEY_LABEL = Buffer.from("safedata/stream/v1/segment-key", "ascii");
/** node:crypto's HKDF accepts at most 1024 bytes of info. */
export const MAX_ASSOCIATED_DATA_SIZE = 1024 - SEGMENT_KEY_LABEL.length;

const CIPHER = "aes-256-gcm";

export interface StreamHeader {
  readonly version: number;
  /** Plaintext bytes per segment (every segment but the last holds exactly this many). */
  readonly segmentSize: number;
  readonly salt: Buffer;
  readonly noncePrefix: Buffer;
  /** The HEADER_SIZE header bytes, authenticated as every segment's additional data. */
  readonly bytes: Buffer;
}

/** A fresh random 256-bit data key. */
export function generateDataKey(): Buffer {
  return randomBytes(DATA_KEY_SIZE);
}

// ---------------------------------------------------------------------------------------------------------------
// Sizes

function checkSegmentSize(segmentSize: number): void {
  if (!Number.isSafeInteger(segmentSize) || segmentSize < MIN_SEGMENT_SIZE || segmentSize > MAX_SEGMENT_SIZE) {
    throw new RangeError(`segment size must be an integer in [${MIN_SEGMENT_SIZE}, ${MAX_SEGMENT_SIZE}]`);
  }
}

function checkSize(name: string, size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`${name} must be a non-negative safe integer`);
}

/** Number of segments a plaintext of this size is sealed into (an empty plaintext still has one segment). */
export function segmentCount(plaintextSize: number, segmentSize: number = DEFAULT_SEGMENT_SIZE): number {
  checkSize("plaintextSize", plaintextSize);
  checkSegmentSize(segmentSize);
  const count = plaintextSize === 0 ? 1 : Math.ceil(plaintextSize / segmentSize);
  if (count > MAX_SEGMENTS) throw new RangeError("plaintext too large for the segment counter");
  return count;
}

/** Total ciphertext size: header, plaintext, and one tag per segment. */
export function ciphertextSize(plaintextSize: number, segmentSize: number = DEFAULT_SEGMENT_SIZE): number {
  return HEADER_SIZE + plaintextSize + TAG_SIZE * segmentCount(plaintextSize, segmentSize);
}

/** Inverse of ciphertextSize. Throws RangeError for a size no plaintext encrypts to. */
export function plaintextSize(ciphertextSize: number, segmentSize: number = DEFAULT_SEGMENT_SIZE): number {
  checkSize("ciphertextSize", ciphertextSize);
  checkSegmentSize(segmentSize);
  const body = ciphertextSize - HEADER_SIZE;
  if (body < TAG_SIZE) throw new RangeError("ciphertext size too small to hold a header and one segment");
  const full = Math.floor(body / (segmentSize + TAG_SIZE));
  const rest = body % (segmentSize + TAG_SIZE);
  let size: number;
  if (rest === 0) {
    size = full * segmentSize;
  } else if (rest < TAG_SIZE || (rest === TAG_SIZE && full > 0)) {
    // A partial last segment needs its tag; an empty last segment exists only when the whole plaintext is empty.
    throw new RangeError("no plaintext size encrypts to this ciphertext size");
  } else {
    size = full * segmentSize + rest - TAG_SIZE;
  }
  segmentCount(size, segmentSize);
  return size;
}

/** Plaintext bytes held by segment `index` of a plaintext of `total` bytes. */
function segmentPlaintextLength(index: number, total: number, segmentSize: number): number {
  return Math.min(segmentSize, total - index * segmentSize);
}

// ---------------------------------------------------------------------------------------------------------------
// Header, keys, nonces

function buildHeader(segmentSize: number, salt: Buffer, noncePrefix: Buffer): StreamHeader {
  const bytes = Buffer.alloc(HEADER_SIZE);
  STREAM_MAGIC.copy(bytes, 0);
  bytes[OFFSET_VERSION] = STREAM_VERSION;
  bytes.writeUInt32BE(segmentSize, OFFSET_SEGMENT_SIZE);
  salt.copy(bytes, OFFSET_SALT);
  noncePrefix.copy(bytes, OFFSET_NONCE_PREFIX);
  return headerView(bytes);
}

function headerView(bytes: Buffer): StreamHeader {
  return {
    version: bytes[OFFSET_VERSION] ?? 0,
    segmentSize: bytes.readUInt32BE(OFFSET_SEGMENT_SIZE),
    salt: bytes.subarray(OFFSET_SALT, OFFSET_SALT + SALT_SIZE),
    noncePrefix: bytes.subarray(OFFSET_NONCE_PREFIX, OFFSET_NONCE_PREFIX + NONCE_PREFIX_SIZE),
    bytes,
  };
}

/**
 * Parses the first HEADER_SIZE bytes of a stream. Checks the format only (magic, version, segment size); the
 * header is authenticated when the first segment is, because it is every segment's additional data.
 * Throws IntegrityError ("header" or "truncated").
 */
export function parseHeader(bytes: Uint8Array, maxSegmentSize: number = MAX_SEGMENT_SIZE): StreamHeader {
  if (bytes.length < HEADER_SIZE) {
    throw new IntegrityError("truncated", null, "ciphertext ends inside the stream header");
  }
  const copy = Buffer.from(bytes.subarray(0, HEADER_SIZE));
  if (!copy.subarray(0, STREAM_MAGIC.length).equals(STREAM_MAGIC)) {
    throw new IntegrityError("header", null, "not a safedata ciphertext stream (bad magic)");
  }
  const header = headerView(copy);
  if (header.version !== STREAM_VERSION) {
    throw new IntegrityError("header", null, "unsupported ciphertext stream version");
  }
  if (header.segmentSize < MIN_SEGMENT_SIZE || header.segmentSize > Math.min(maxSegmentSize, MAX_SEGMENT_SIZE)) {
    throw new IntegrityError("header", null, "ciphertext stream header has an unacceptable segment size");
  }
  return header;
}

function checkKeyAndAssociatedData(dataKey: Uint8Array, associatedData: Uint8Array): void {
  if (!(dataKey instanceof Uint8Array) || dataKey.length !== DATA_KEY_SIZE) {
    throw new RangeError(`data key must be ${DATA_KEY_SIZE} bytes`);
  }
  if (!(associatedData instanceof Uint8Array) || associatedData.length > MAX_ASSOCIATED_DATA_SIZE) {
    throw new RangeError(`associated data must be bytes, at most ${MAX_ASSOCIATED_DATA_SIZE} of them`);
  }
}

/** HKDF-SHA256(ikm = data key, salt = header salt, info = label ‖ associated data), 32 bytes. */
function deriveSegmentKey(dataKey: Uint8Array, salt: Buffer, associatedData: Uint8Array): KeyObject {
  const info = Buffer.concat([SEGMENT_KEY_LABEL, associatedData]);
  const raw = Buffer.from(hkdfSync("sha256", dataKey, salt, info, DATA_KEY_SIZE));
  const key = createSecretKey(raw);
  raw.fill(0);
  return key;
}

/** nonce prefix(7) ‖ uint32 BE segment index ‖ last flag (0x01 last, 0x00 otherwise). */
function segmentNonce(noncePrefix: Buffer, index: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(NONCE_PREFIX_SIZE + 5);
  noncePrefix.copy(nonce, 0);
  nonce.writeUInt32BE(index, NONCE_PREFIX_SIZE);
  nonce[NONCE_PREFIX_SIZE + 4] = last ? 1 : 0;
  return nonce;
}

/** Seals one segment given as consecutive pieces; returns the ciphertext pieces followed by the tag. */
function sealSegment(
  key: KeyObject,
  header: StreamHeader,
  index: number,
  last: boolean,
  plaintext: readonly Buffer[],
): Buffer[] {
  const cipher = createCipheriv(CIPHER, key, segmentNonce(header.noncePrefix, index, last), {
    authTagLength: TAG_SIZE,
  });
  cipher.setAAD(header.bytes);
  const out: Buffer[] = [];
  for (const piece of plaintext) out.push(cipher.update(piece));
  cipher.final();
  out.push(cipher.getAuthTag());
  return out;
}

/**
 * Opens one segment (ciphertext pieces and tag) and returns its plaintext pieces, or throws IntegrityError.
 * Unverified plaintext never leaves this function.
 */
function openSegment(
  key: KeyObject,
  header: StreamHeader,
  index: number,
  last: boolean,
  ciphertext: readonly Buffer[],
  tag: Buffer,
): Buffer[] {
  const decipher = createDecipheriv(CIPHER, key, segmentNonce(header.noncePrefix, index, last), {
    authTagLength: TAG_SIZE,
  });
  decipher.setAAD(header.bytes);
  decipher.setAuthTag(tag);
  const plaintext: Buffer[] = [];
  for (const piece of ciphertext) plaintext.push(decipher.update(piece));
  try {
    decipher.final();
  } catch {
    for (const piece of plaintext) piece.fill(0);
    throw new IntegrityError("segment", index, `ciphertext segment ${index} failed authentication`);
  }
  return plaintext;
}

function toError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

function asBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new TypeError("crypto streams accept bytes only");
}

// ---------------------------------------------------------------------------------------------------------------
// Encryption

export interface EncryptOptions {
  /** Plaintext bytes per segment; DEFAULT_SEGMENT_SIZE unless there is a reason. */
  segmentSize?: number;
  /**
   * Fixed salt and nonce prefix, for reproducing test vectors ONLY. Sealing two streams with the same data key,
   * salt and nonce prefix reuses GCM nonces and destroys confidentiality and integrity.
   */
  deterministic?: { salt: Uint8Array; noncePrefix: Uint8Array };
}

class EncryptStream extends Transform {
  private readonly key: KeyObject;
  private readonly header: StreamHeader;
  private readonly segmentSize: number;
  private readonly pending = new ChunkQueue();
  private nextIndex = 0;
  private headerSent = false;

  constructor(dataKey: Uint8Array, associatedData: Uint8Array, options: EncryptOptions) {
    const segmentSize = options.segmentSize ?? DEFAULT_SEGMENT_SIZE;
    checkSegmentSize(segmentSize);
    checkKeyAndAssociatedData(dataKey, associatedData);
    super({ readableHighWaterMark: segmentSize + TAG_SIZE });
    let salt = randomBytes(SALT_SIZE);
    let noncePrefix = randomBytes(NONCE_PREFIX_SIZE);
    const fixed = options.deterministic;
    if (fixed !== undefined) {
      if (fixed.salt.length !== SALT_SIZE || fixed.noncePrefix.length !== NONCE_PREFIX_SIZE) {
        throw new RangeError(`salt must be ${SALT_SIZE} bytes and nonce prefix ${NONCE_PREFIX_SIZE} bytes`);
      }
      salt = Buffer.from(fixed.salt);
      noncePrefix = Buffer.from(fixed.noncePrefix);
    }
    this.segmentSize = segmentSize;
    this.header = buildHeader(segmentSize, salt, noncePrefix);
    this.key = deriveSegmentKey(dataKey, this.header.salt, associatedData);
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.sendHeader();
      this.pending.push(asBuffer(chunk));
      // A full segment is sealed as "not last" only once at least one more byte is known to follow it.
      while (this.pending.length > this.segmentSize) this.seal(this.pending.takePieces(this.segmentSize), false);
      callback();
    } catch (e) {
      callback(toError(e));
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.sendHeader();
      // 1..segmentSize bytes, or 0 when the whole plaintext was empty.
      this.seal(this.pending.takePieces(this.pending.length), true);
      callback();
    } catch (e) {
      callback(toError(e));
    }
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    this.push(this.header.bytes);
  }

  private seal(plaintext: readonly Buffer[], last: boolean): void {
    if (this.nextIndex >= MAX_SEGMENTS) throw new RangeError("plaintext too large for the segment counter");
    const sealed = sealSegment(this.key, this.header, this.nextIndex, last, plaintext);
    this.nextIndex += 1;
    for (const piece of sealed) if (piece.length > 0) this.push(piece);
  }
}

/**
 * A Transform from plaintext (chunks of any size) to the SDS1 ciphertext: header, then sealed segments.
 * Holds at most one segment of plaintext besides the chunk being processed, and respects backpressure.
 */
export function createEncryptStream(
  dataKey: Uint8Array,
  associatedData: Uint8Array,
  options: EncryptOptions = {},
): Transform {
  return new EncryptStream(dataKey, associatedData, options);
}

// ---------------------------------------------------------------------------------------------------------------
// Decryption

export interface DecryptOptions {
  /** Rejects headers claiming a larger segment size (bounds memory). Default MAX_SEGMENT_SIZE. */
  maxSegmentSize?: number;
}

class DecryptStream extends Transform {
  private readonly pending = new ChunkQueue();
  private header: StreamHeader | null = null;
  private key: KeyObject | null = null;
  private nextIndex = 0;

  constructor(
    private readonly dataKey: Uint8Array,
    private readonly associatedData: Uint8Array,
    private readonly options: DecryptOptions,
  ) {
    checkKeyAndAssociatedData(dataKey, associatedData);
    super();
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.pending.push(asBuffer(chunk));
      if (this.header === null || this.key === null) {
        if (this.pending.length < HEADER_SIZE) return callback();
        this.header = parseHeader(this.pending.take(HEADER_SIZE), this.options.maxSegmentSize);
        this.key = deriveSegmentKey(this.dataKey, this.header.salt, this.associatedData);
      }
      const { segmentSize } = this.header;
      // A full-size segment is the last one only if nothing follows it, which is known only at the end.
      while (this.pending.length > segmentSize + TAG_SIZE) this.open(this.header, this.key, segmentSize, false);
      callback();
    } catch (e) {
      this.pending.clear();
      callback(toError(e));
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      if (this.header === null || this.key === null) {
        throw new IntegrityError("truncated", null, "ciphertext ends inside the stream header");
      }
      const rest = this.pending.length;
      if (rest < TAG_SIZE) {
        throw new IntegrityError("truncated", this.nextIndex, `ciphertext ends inside segment ${this.nextIndex}`);
      }
      if (rest === TAG_SIZE && this.nextIndex > 0) {
        // An empty last segment exists only when the whole plaintext is empty; no encryptor writes this.
        const index = this.nextIndex;
        throw new IntegrityError("segment", index, `ciphertext segment ${index} failed authentication`);
      }
      this.open(this.header, this.key, rest - TAG_SIZE, true);
      callback();
    } catch (e) {
      this.pending.clear();
      callback(toError(e));
    }
  }

  /** Opens the next queued segment, holding `ciphertextLength` bytes before its tag. */
  private open(header: StreamHeader, key: KeyObject, ciphertextLength: number, last: boolean): void {
    if (this.nextIndex >= MAX_SEGMENTS) {
      throw new IntegrityError("segment", this.nextIndex, "ciphertext has more segments than the counter allows");
    }
    const ciphertext = this.pending.takePieces(ciphertextLength);
    const plaintext = openSegment(key, header, this.nextIndex, last, ciphertext, this.pending.take(TAG_SIZE));
    this.nextIndex += 1;
    for (const piece of plaintext) if (piece.length > 0) this.push(piece);
  }
}

/**
 * A Transform from SDS1 ciphertext to plaintext. Each segment's plaintext is emitted only after its tag has
 * verified; on any failure (altered, truncated, reordered, foreign or trailing data) the stream is destroyed with
 * an IntegrityError naming the segment, and nothing from that segment or later is emitted.
 */
export function createDecryptStream(
  dataKey: Uint8Array,
  associatedData: Uint8Array,
  options: DecryptOptions = {},
): Transform {
  return new DecryptStream(dataKey, associatedData, options);
}

// ---------------------------------------------------------------------------------------------------------------
// Ranges

export interface RangePlan {
  /** Index of the first segment to fetch and decrypt. */
  readonly firstSegment: number;
  /** Index of the last segment to fetch and decrypt (inclusive). */
  readonly lastSegment: number;
  /**
   * Ciphertext bytes to fetch (inclusive offsets into the stored object) holding segments firstSegment..lastSegment.
   * The header (bytes 0..HEADER_SIZE-1) is needed as well; when firstSegment is 0 it directly precedes this range,
   * so one request for 0..ciphertextEndInclusive can fetch both.
   */
  readonly ciphertextStart: number;
  readonly ciphertextEndInclusive: number;
  /** Plaintext bytes to drop from the start of firstSegment. */
  readonly skip: number;
  /** Plaintext bytes to deliver (endInclusive - start + 1). */
  readonly length: number;
}

/**
 * Maps a plaintext byte range [start, endInclusive] of a payload of `plaintextSize` bytes to the segments that hold
 * it. Use the segment size from the stream's header (the default unless the payload was written otherwise).
 * Throws RangeError unless 0 <= start <= endInclusive < plaintextSize.
 */
export function planRange(
  plaintextSize: number,
  start: number,
  endInclusive: number,
  segmentSize: number = DEFAULT_SEGMENT_SIZE,
): RangePlan {
  const count = segmentCount(plaintextSize, segmentSize);
  const valid = Number.isSafeInteger(start) && Number.isSafeInteger(endInclusive);
  if (!valid || start < 0 || start > endInclusive || endInclusive >= plaintextSize) {
    throw new RangeError("range must satisfy 0 <= start <= endInclusive < plaintextSize");
  }
  const sealedSize = segmentSize + TAG_SIZE;
  const firstSegment = Math.floor(start / segmentSize);
  const lastSegment = Math.floor(endInclusive / segmentSize);
  const lastSealedSize = lastSegment === count - 1
    ? segmentPlaintextLength(lastSegment, plaintextSize, segmentSize) + TAG_SIZE
    : sealedSize;
  return {
    firstSegment,
    lastSegment,
    ciphertextStart: HEADER_SIZE + firstSegment * sealedSize,
    ciphertextEndInclusive: HEADER_SIZE + lastSegment * sealedSize + lastSealedSize - 1,
    skip: start - firstSegment * segmentSize,
    length: endInclusive - start + 1,
  };
}

export interface RangeDecryptParams {
  readonly dataKey: Uint8Array;
  readonly associatedData: Uint8Array;
  /** The stream's first HEADER_SIZE bytes. */
  readonly header: Uint8Array;
  /** From planRange. */
  readonly firstSegment: number;
  /** Plaintext size of the whole payload (from the upload's record); decides which segment is the last. */
  readonly totalPlaintextSize: number;
  /** From planRange. */
  readonly skip: number;
  /** From planRange. */
  readonly length: number;
  readonly maxSegmentSize?: number;
}

class RangeDecryptStream extends Transform {
  private readonly pending = new ChunkQueue();
  private readonly key: KeyObject;
  private readonly header: StreamHeader;
  private readonly totalSegments: number;
  private readonly lastSegment: number;
  private readonly totalPlaintextSize: number;
  private index: number;
  private skip: number;
  private remaining: number;

  constructor(params: RangeDecryptParams) {
    checkKeyAndAssociatedData(params.dataKey, params.associatedData);
    if (params.header.length !== HEADER_SIZE) throw new RangeError(`header must be exactly ${HEADER_SIZE} bytes`);
    const header = parseHeader(params.header, params.maxSegmentSize);
    const { segmentSize } = header;
    const totalSegments = segmentCount(params.totalPlaintextSize, segmentSize);
    const { firstSegment, skip, length } = params;
    if (!Number.isSafeInteger(firstSegment) || firstSegment < 0 || firstSegment >= totalSegments) {
      throw new RangeError("firstSegment is outside the payload");
    }
    const begin = firstSegment * segmentSize + skip;
    if (!Number.isSafeInteger(skip) || skip < 0 || skip >= segmentSize || !Number.isSafeInteger(length) || length < 1 ||
        begin + length > params.totalPlaintextSize) {
      throw new RangeError("skip and length must select at least one byte inside the payload");
    }
    super();
    this.header = header;
    this.key = deriveSegmentKey(params.dataKey, header.salt, params.associatedData);
    this.totalSegments = totalSegments;
    this.totalPlaintextSize = params.totalPlaintextSize;
    this.lastSegment = Math.floor((begin + length - 1) / segmentSize);
    this.index = firstSegment;
    this.skip = skip;
    this.remaining = length;
  }

  override _transform(chunk: unknown, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.pending.push(asBuffer(chunk));
      // Segment sizes are known from the total size, so each segment is opened as soon as it is complete.
      while (this.index <= this.lastSegment) {
        const length = segmentPlaintextLength(this.index, this.totalPlaintextSize, this.header.segmentSize);
        if (this.pending.length < length + TAG_SIZE) break;
        this.openNext(length);
      }
      if (this.index > this.lastSegment && this.pending.length > 0) {
        throw new IntegrityError("trailing-data", this.index, "more ciphertext than the requested segments");
      }
      callback();
    } catch (e) {
      this.pending.clear();
      callback(toError(e));
    }
  }

  override _flush(callback: TransformCallback): void {
    if (this.index <= this.lastSegment) {
      this.pending.clear();
      callback(new IntegrityError("truncated", this.index, `ciphertext ends inside segment ${this.index}`));
      return;
    }
    callback();
  }

  /** Opens the next queued segment, holding `ciphertextLength` bytes before its tag, and emits the wanted part. */
  private openNext(ciphertextLength: number): void {
    const last = this.index === this.totalSegments - 1;
    const ciphertext = this.pending.takePieces(ciphertextLength);
    const plaintext = openSegment(this.key, this.header, this.index, last, ciphertext, this.pending.take(TAG_SIZE));
    this.index += 1;
    for (const piece of plaintext) {
      if (this.remaining === 0) break;
      if (this.skip >= piece.length) {
        this.skip -= piece.length;
        continue;
      }
      const wanted = piece.subarray(this.skip, Math.min(piece.length, this.skip + this.remaining));
      this.skip = 0;
      this.remaining -= wanted.length;
      this.push(wanted);
    }
  }
}

/**
 * A Transform from the ciphertext bytes of a RangePlan (segments firstSegment..lastSegment, nothing else) to
 * exactly the requested plaintext bytes. Every segment read is authenticated before any of it is emitted, and
 * must carry the last-segment flag exactly when it is the payload's final segment. Throws RangeError for
 * inconsistent parameters and IntegrityError for a malformed header.
 */
export function createRangeDecryptStream(params: RangeDecryptParams): Transform {
  return new RangeDecryptStream(params);
}
