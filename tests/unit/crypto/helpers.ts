import { randomBytes } from "node:crypto";
import { Readable, Writable, type Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createEncryptStream, type EncryptOptions } from "../../../shared/crypto";

/** Bytes start, start+1, … (mod 256). */
export function seq(start: number, length: number): Buffer {
  return Buffer.from(Array.from({ length }, (_, i) => (start + i) & 0xff));
}

/** Splits `data` into consecutive chunks whose sizes cycle through `sizes` (all > 0). */
export function chunked(data: Buffer, sizes: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = sizes[i % sizes.length] ?? 1;
    out.push(data.subarray(at, at + size));
    at += size;
  }
  return out;
}

export interface Outcome {
  /** Everything the stream handed to its readable side, whether or not a consumer got it before an error. */
  readonly pushed: Buffer;
  /** What the consumer received. */
  readonly received: Buffer;
  readonly error: unknown;
}

/** Writes `chunks` through `stream` into a collecting sink; never rejects, reports the error instead. */
export async function drive(stream: Transform, chunks: readonly Buffer[]): Promise<Outcome> {
  const pushed: Buffer[] = [];
  const originalPush = stream.push.bind(stream);
  stream.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
    if (chunk !== null && chunk !== undefined) pushed.push(Buffer.from(chunk as Uint8Array));
    return originalPush(chunk, encoding);
  };
  const received: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      received.push(chunk);
      callback();
    },
  });
  let error: unknown = null;
  try {
    await pipeline(Readable.from(chunks), stream, sink);
  } catch (e) {
    error = e;
  }
  return { pushed: Buffer.concat(pushed), received: Buffer.concat(received), error };
}

/** Encrypts `plaintext` fed in chunks of the given sizes (default: one chunk). */
export async function encrypt(
  dataKey: Uint8Array,
  associatedData: Uint8Array,
  plaintext: Buffer,
  options: EncryptOptions = {},
  chunkSizes: readonly number[] = [Math.max(1, plaintext.length)],
): Promise<Buffer> {
  const { received, error } = await drive(createEncryptStream(dataKey, associatedData, options), chunked(plaintext, chunkSizes));
  if (error !== null) throw error;
  return received;
}

/** Random bytes to encrypt. */
export function payload(length: number): Buffer {
  return length === 0 ? Buffer.alloc(0) : randomBytes(length);
}
