/**
 * Encrypted payloads in Blob Storage (container "payloads"). Every blob of an upload lives under
 * `<tenantId>/<uploadId>/`, one per content attempt, and holds the streamed AEAD format of docs/encryption-format.md:
 * a 48-byte header, then 64 KiB segments each sealed with AES-256-GCM, bound to the tenant and upload as associated
 * data. Plaintext never reaches storage and is never held whole in memory: it is encrypted as it arrives and
 * decrypted as it leaves, and no byte leaves before its segment's tag checked out.
 *
 * The same store keeps other encrypted content of a record in its own container: a `ContentKind` says what the
 * associated data binds the stream to (uploads: `upload`, tenant, upload id; consent evidence: `consent-evidence`,
 * tenant, event id; see shared/stores/evidence-blobs.ts). Where this file says "upload", read "the record the content
 * belongs to" for other kinds.
 */
import { createHash, type Hash } from "node:crypto";
import { pipeline, Readable, Transform, type TransformCallback } from "node:stream";
import type { ContainerClient } from "@azure/storage-blob";
import {
  HEADER_SIZE,
  ciphertextSize,
  createDecryptStream,
  createEncryptStream,
  createRangeDecryptStream,
  planRange,
  uploadAssociatedData,
} from "../crypto";
import { AppError, type ErrorKind } from "../errors";
import { isConflict, isNotFound, isPreconditionFailed } from "./sdk-errors";

/** What one kind of stored content is bound to: the associated data of its stream, and the label its blobs carry. */
export interface ContentKind {
  /** Blob metadata name for the record id (`upload`, `event`). */
  readonly label: string;
  associatedData(tenantId: string, recordId: string): Buffer;
}

/** SafeData uploads: ("upload", tenant, upload id). */
export const UPLOAD_CONTENT: ContentKind = { label: "upload", associatedData: uploadAssociatedData };

/** Where an upload's blobs live; every blob under it belongs to that upload. */
export function blobPrefix(tenantId: string, uploadId: string): string {
  return `${tenantId}/${uploadId}/`;
}

/** What the upload record keeps about its stored content. */
export interface StoredPayload {
  blobName: string;
  /** The stream header, base64 (public: format, salt, nonce prefix), so range reads need not fetch it. */
  header: string;
  ciphertextSize: number;
  /** SHA-256 of the plaintext (hex), when the write asked for it. */
  sha256?: string;
}

/**
 * A check of the body's first bytes before anything of it is stored: `check` gets the first `bytes` bytes (all of
 * them when the body is shorter) and throws to refuse the body; what it throws is what `write` throws.
 */
export interface HeadCheck {
  bytes: number;
  check(head: Buffer): void;
}

/**
 * The body a client sent could not be stored: too long, too short, cut off or stalled. Nothing was kept. `received`
 * counts the plaintext bytes that had arrived (for the log).
 */
export class PayloadBodyError extends AppError {
  constructor(
    kind: Extract<ErrorKind, "payload-too-large" | "malformed-request" | "request-timeout" | "unsupported-media-type">,
    detail: string,
    readonly received: number,
  ) {
    super(kind, detail);
    this.name = "PayloadBodyError";
  }
}

/** The record names content whose blob is not in storage (deleted outside the service, or never committed). */
export class PayloadMissingError extends Error {
  constructor() {
    super("the stored content is missing");
    this.name = "PayloadMissingError";
  }
}

// 4 MiB blocks: half the memory of 8 MiB at the same measured throughput (bench/RESULTS.md), still well above the
// 256 KiB Azure needs for high-throughput block blobs, and 512 blocks for the largest (2 GiB) upload.
const UPLOAD_BUFFER_BYTES = 4 * 1024 * 1024;
/** Block buffers per upload: one filling, the others being staged; reading the body waits while all are (back-pressure). */
const UPLOAD_CONCURRENCY = 4;

/** Block ids must all have the same length within a blob (Put Block); base64 of a fixed-width counter. */
function blockId(n: number): string {
  return Buffer.from(`block-${String(n).padStart(6, "0")}`).toString("base64");
}

/**
 * Passes the body on while checking its size against the declared one, and watches for a body that stops arriving:
 * when the next stage wants data and none has come from the client for `idleMs`, it calls `onIdle` (which ends the
 * request), so a stalled client cannot hold a connection, buffers and the upload's "receiving" claim. Time spent
 * while storage is slow to take what it was given (back-pressure) does not count.
 */
class ExactSize extends Transform {
  seen = 0;
  private idle: NodeJS.Timeout | undefined;
  private onIdle: ((err: Error) => void) | undefined;
  constructor(
    private readonly expected: number,
    private readonly idleMs: number,
  ) {
    super();
  }
  /** Starts the idle watch. */
  watch(onIdle: (err: Error) => void): void {
    this.onIdle = onIdle;
    this.arm();
  }
  private arm(): void {
    const onIdle = this.onIdle;
    if (!onIdle || this.idle) return;
    this.idle = setTimeout(() => {
      onIdle(
        new PayloadBodyError(
          "request-timeout",
          `no bytes arrived for ${Math.round(this.idleMs / 1000)} s, after ${this.seen} of the declared ${this.expected}; nothing was stored, send it again`,
          this.seen,
        ),
      );
    }, this.idleMs);
    // The request holds the process open, not this timer.
    this.idle.unref();
  }
  private disarm(): void {
    clearTimeout(this.idle);
    this.idle = undefined;
  }
  /** The next stage wants data: from now on, waiting counts against the client. */
  override _read(size: number): void {
    this.arm();
    super._read(size);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.disarm();
    this.seen += chunk.length;
    if (this.seen > this.expected) {
      return cb(new PayloadBodyError("payload-too-large", `the body is larger than the declared size of ${this.expected} bytes; nothing was stored`, this.seen));
    }
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    this.onIdle = undefined;
    this.disarm();
    if (this.seen < this.expected) return cb(this.short());
    cb();
  }
  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.onIdle = undefined;
    this.disarm();
    cb(err);
  }
  short(): PayloadBodyError {
    return new PayloadBodyError("malformed-request", `the body ended after ${this.seen} of the declared ${this.expected} bytes; nothing was stored, send it again`, this.seen);
  }
}

/**
 * Looks at the plaintext on its way to the encryptor: holds the first bytes back until `head.bytes` have come (or the
 * body ended) and lets `head.check` refuse them before any byte is passed on, and hashes what passes (SHA-256).
 */
class Inspect extends Transform {
  private held: Buffer[] = [];
  private heldBytes = 0;
  private checked: boolean;
  private readonly hash: Hash | undefined;
  constructor(
    private readonly head: HeadCheck | undefined,
    digest: boolean,
  ) {
    super();
    this.checked = head === undefined;
    this.hash = digest ? createHash("sha256") : undefined;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.checked) return cb(null, this.pass(chunk));
    this.held.push(chunk);
    this.heldBytes += chunk.length;
    if (this.heldBytes < this.head!.bytes) return cb();
    this.release(cb);
  }
  override _flush(cb: TransformCallback): void {
    if (!this.checked) return this.release(cb);
    cb();
  }
  private release(cb: TransformCallback): void {
    const all = Buffer.concat(this.held);
    this.held = [];
    this.checked = true;
    try {
      this.head!.check(all.subarray(0, this.head!.bytes));
    } catch (err) {
      return cb(err as Error);
    }
    cb(null, this.pass(all));
  }
  private pass(chunk: Buffer): Buffer {
    this.hash?.update(chunk);
    return chunk;
  }
  digest(): string | undefined {
    return this.hash?.digest("hex");
  }
}

/**
 * Keeps the first HEADER_SIZE bytes the encryptor writes (the stream header) and counts the ciphertext (`total`,
 * bytes), passing everything on. Shared with the other stores that write the SafeData stream format.
 */
export class HeaderTap extends Transform {
  private parts: Buffer[] = [];
  private have = 0;
  total = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (this.have < HEADER_SIZE) {
      const take = chunk.subarray(0, HEADER_SIZE - this.have);
      this.parts.push(Buffer.from(take));
      this.have += take.length;
    }
    this.total += chunk.length;
    cb(null, chunk);
  }
  header(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export interface PayloadTarget {
  tenantId: string;
  uploadId: string;
  /** One blob per content attempt, so a retry never overwrites or mixes with an interrupted attempt. */
  attemptId: string;
}

function attemptBlobName(target: PayloadTarget): string {
  return `${blobPrefix(target.tenantId, target.uploadId)}${target.attemptId}`;
}

export interface PayloadRef {
  tenantId: string;
  uploadId: string;
  blobName: string;
  /** StoredPayload.header */
  header: string;
  /** The plaintext size in bytes. */
  size: number;
}

export class PayloadStore {
  constructor(
    private readonly container: ContainerClient,
    private readonly kind: ContentKind = UPLOAD_CONTENT,
  ) {}

  /**
   * Encrypts `body`, which must be exactly `size` bytes, into a new blob for this attempt. Blocks are staged as they
   * arrive and committed only at the end, so an interrupted write leaves no committed blob. Throws PayloadBodyError
   * when the body is too long, too short, cut off, or stops arriving for `idleMs`. When it throws, every block request
   * it started has settled (none can land later), but the staged blocks are still there: the caller discards the
   * attempt with `discard` (they are ciphertext of personal data, and Azure keeps uncommitted blocks for 7 days).
   * `head` checks the first bytes before any is encrypted (its error is thrown as it is); `sha256` hashes the
   * plaintext as it passes.
   */
  async write(
    target: PayloadTarget,
    dataKey: Buffer,
    body: Readable,
    opts: { size: number; idleMs: number; head?: HeadCheck; sha256?: boolean },
  ): Promise<StoredPayload> {
    const blob = this.container.getBlockBlobClient(attemptBlobName(target));
    const size = new ExactSize(opts.size, opts.idleMs);
    const inspect = opts.head || opts.sha256 ? new Inspect(opts.head, opts.sha256 === true) : undefined;
    const tap = new HeaderTap();
    let clientError: Error | undefined;
    body.once("error", (err) => (clientError ??= err));
    const staging = new Set<Promise<void>>();
    let stageError: unknown;
    const blockIds: string[] = [];
    // UPLOAD_CONCURRENCY buffers of UPLOAD_BUFFER_BYTES, reused: one fills while the others are being staged (as
    // uploadStream shares them), so memory stays the same whatever the upload's size.
    const spare: Buffer[] = [];
    const take = () => spare.pop() ?? Buffer.allocUnsafe(UPLOAD_BUFFER_BYTES);
    /** Stages the first `length` bytes of `buffer`, which is not touched again until its request settled. */
    const stage = async (buffer: Buffer, length: number): Promise<void> => {
      const id = blockId(blockIds.length);
      blockIds.push(id);
      const request: Promise<void> = blob
        .stageBlock(id, buffer.subarray(0, length), length)
        .then(
          () => undefined,
          (err: unknown) => void (stageError ??= err),
        )
        .finally(() => {
          staging.delete(request);
          spare.push(buffer);
        });
      staging.add(request);
      while (staging.size >= UPLOAD_CONCURRENCY - 1 && stageError === undefined) await Promise.race(staging);
      if (stageError !== undefined) throw stageError;
    };
    try {
      // pipeline() carries an error at any stage (client gone, wrong size, stalled) to the stream read below.
      const encrypt = createEncryptStream(dataKey, this.kind.associatedData(target.tenantId, target.uploadId));
      if (inspect) pipeline(body, size, inspect, encrypt, tap, () => undefined);
      else pipeline(body, size, encrypt, tap, () => undefined);
      // Ending the size check ends the pipeline at once; the body itself may take a while to let go of its source.
      size.watch((err) => {
        size.destroy(err);
        body.destroy(err);
      });
      let block = take();
      let filled = 0;
      for await (const chunk of tap as AsyncIterable<Buffer>) {
        for (let at = 0; at < chunk.length; ) {
          const n = Math.min(chunk.length - at, UPLOAD_BUFFER_BYTES - filled);
          chunk.copy(block, filled, at, at + n);
          filled += n;
          at += n;
          if (filled === UPLOAD_BUFFER_BYTES) {
            await stage(block, filled);
            block = take();
            filled = 0;
          }
        }
      }
      if (filled > 0) await stage(block, filled);
      await Promise.all(staging);
      if (stageError !== undefined) throw stageError;
      if (tap.total !== ciphertextSize(opts.size)) throw new Error("ciphertext size does not match the plaintext size");
      await blob.commitBlockList(blockIds, {
        conditions: { ifNoneMatch: "*" },
        blobHTTPHeaders: { blobContentType: "application/octet-stream" },
        metadata: { format: "sds1", [this.kind.label]: target.uploadId },
      });
    } catch (err) {
      // Whatever failed (storage, the client, the size), nothing more is read: end the pipeline and its idle watch,
      // and let every block request under way settle, so none lands after the caller discarded the attempt.
      size.destroy();
      body.destroy();
      await Promise.allSettled([...staging]);
      if (err instanceof PayloadBodyError) throw err;
      if (clientError) throw size.short();
      throw err;
    }
    const sha256 = inspect?.digest();
    return { blobName: blob.name, header: tap.header().toString("base64"), ciphertextSize: tap.total, ...(sha256 !== undefined ? { sha256 } : {}) };
  }

  /**
   * Removes whatever a content attempt left in storage: its committed blob, or the blocks it staged without
   * committing. Idempotent; safe while nothing of the attempt exists.
   */
  async discard(target: PayloadTarget): Promise<void> {
    await this.discardBlob(attemptBlobName(target));
  }

  /**
   * The plaintext of a stored payload, whole or bytes `range.start`..`range.end` (inclusive), decrypted as it is
   * read. Resolves once the first authenticated bytes are ready (or the content is empty), so a missing blob
   * (PayloadMissingError) or damage at the start (IntegrityError from shared/crypto) is known before anything is
   * sent; damage further on fails the returned stream before any unauthenticated byte leaves it.
   */
  async open(ref: PayloadRef, dataKey: Buffer, range?: { start: number; end: number }): Promise<Readable> {
    const blob = this.container.getBlobClient(ref.blobName);
    const associatedData = this.kind.associatedData(ref.tenantId, ref.uploadId);
    let body: Transform;
    try {
      if (range) {
        const plan = planRange(ref.size, range.start, range.end);
        const res = await blob.download(plan.ciphertextStart, plan.ciphertextEndInclusive - plan.ciphertextStart + 1, { maxRetryRequests: 3 });
        body = createRangeDecryptStream({
          dataKey,
          associatedData,
          header: Buffer.from(ref.header, "base64"),
          firstSegment: plan.firstSegment,
          totalPlaintextSize: ref.size,
          skip: plan.skip,
          length: plan.length,
        });
        pipeline(res.readableStreamBody!, body, () => undefined);
      } else {
        const res = await blob.download(0, undefined, { maxRetryRequests: 3 });
        body = createDecryptStream(dataKey, associatedData);
        pipeline(res.readableStreamBody!, body, () => undefined);
      }
    } catch (err) {
      if (isNotFound(err)) throw new PayloadMissingError();
      throw err;
    }
    return afterFirstChunk(body);
  }

  /**
   * Deletes every blob of the upload, all attempts with their snapshots, and the blocks of attempts that staged
   * some but never committed them (an instance that died mid-upload); returns how many blob names there were.
   */
  async deleteAll(tenantId: string, uploadId: string): Promise<number> {
    let n = 0;
    for await (const blob of this.container.listBlobsFlat({ prefix: blobPrefix(tenantId, uploadId), includeUncommitedBlobs: true })) {
      await this.discardBlob(blob.name);
      n++;
    }
    return n;
  }

  /**
   * Deletes a blob and its uncommitted blocks. Deleting a committed blob discards its uncommitted blocks with it. A
   * name that holds uncommitted blocks only is not a blob to Delete Blob on Azure (404; Azurite deletes it anyway):
   * committing an empty block list first makes it an empty blob and discards every uncommitted block (Put Block List),
   * and that empty blob is then deleted.
   */
  private async discardBlob(name: string): Promise<void> {
    const blob = this.container.getBlockBlobClient(name);
    if ((await blob.deleteIfExists({ deleteSnapshots: "include" })).succeeded) return;
    try {
      await blob.commitBlockList([], { conditions: { ifNoneMatch: "*" } });
    } catch (err) {
      // Committed by someone else in between: it is a blob now, deleted below like any other.
      if (!isConflict(err) && !isPreconditionFailed(err)) throw err;
    }
    await blob.deleteIfExists({ deleteSnapshots: "include" });
  }

  /** Reachability, for health: reads the container's properties. */
  async probe(): Promise<void> {
    await this.container.getProperties();
  }
}

/**
 * Waits until the stream has produced its first (verified) chunk, or ended, before handing it on: damage at the start
 * of the content then fails the open instead of a response already under way. Later damage fails the stream.
 */
async function afterFirstChunk(stream: Readable): Promise<Readable> {
  const it = stream[Symbol.asyncIterator]();
  let first: IteratorResult<unknown>;
  try {
    first = await it.next();
  } catch (err) {
    stream.destroy();
    throw err;
  }
  return Readable.from(
    (async function* () {
      try {
        if (!first.done) yield first.value as Buffer;
        for (let r = await it.next(); !r.done; r = await it.next()) yield r.value as Buffer;
      } finally {
        // A reader that goes away ends this generator early: release the decryptor and the blob download with it.
        stream.destroy();
      }
    })(),
    { objectMode: false, highWaterMark: 1 },
  );
}
