/**
 * A large payload that is never held in memory: byte `o` of the payload is byte `o mod POOL` of a small random
 * pool, produced chunk by chunk. The same property lets a download be checked against it cheaply (a memcmp per
 * chunk, no hashing).
 */
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";

const POOL_BYTES = 8 * 1024 * 1024;
/** Size of the chunks handed to the socket or the storage SDK (a divisor of POOL_BYTES). */
const CHUNK_BYTES = 256 * 1024;

export class Payload {
  private readonly pool = randomBytes(POOL_BYTES);

  constructor(readonly size: number) {}

  /** The payload as consecutive views of the pool; nothing is allocated per chunk. */
  *chunks(): Generator<Buffer> {
    for (let offset = 0; offset < this.size; ) {
      const start = offset % POOL_BYTES;
      const length = Math.min(CHUNK_BYTES, POOL_BYTES - start, this.size - offset);
      yield this.pool.subarray(start, start + length);
      offset += length;
    }
  }

  readable(): Readable {
    return Readable.from(this.chunks(), { objectMode: false });
  }

  /** Checks bytes received in order, whatever their chunking. */
  verifier(): PayloadVerifier {
    return new PayloadVerifier(this.pool, this.size);
  }
}

export class PayloadVerifier {
  private offset = 0;
  /** The offset of the first byte that differed, if any. */
  mismatchAt: number | undefined;

  constructor(
    private readonly pool: Buffer,
    private readonly size: number,
  ) {}

  get received(): number {
    return this.offset;
  }

  update(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      const start = this.offset % this.pool.length;
      const length = Math.min(chunk.length - at, this.pool.length - start);
      if (this.mismatchAt === undefined && this.pool.compare(chunk, at, at + length, start, start + length) !== 0) {
        this.mismatchAt = this.offset;
      }
      at += length;
      this.offset += length;
    }
  }

  /** Throws unless exactly the payload arrived. */
  check(what: string): void {
    if (this.mismatchAt !== undefined) throw new Error(`${what}: content differs from what was sent, from byte ${this.mismatchAt}`);
    if (this.offset !== this.size) throw new Error(`${what}: received ${this.offset} of ${this.size} bytes`);
  }
}
