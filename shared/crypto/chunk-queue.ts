/**
 * A FIFO of byte chunks from which fixed-size pieces are cut. Chunks are kept as they arrive; a piece that lies
 * inside one chunk is returned as a view (no copy), a piece spanning chunks is copied once. Nothing is
 * concatenated per incoming chunk, so the cost is linear in the bytes however small the chunks are.
 */
export class ChunkQueue {
  private chunks: Buffer[] = [];
  /** Index of the first chunk still holding unread bytes. */
  private head = 0;
  /** Bytes of chunks[head] already taken. */
  private offset = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** Removes and returns the next `n` bytes; `n` must not exceed `length`. */
  take(n: number): Buffer {
    if (n > this.total) throw new RangeError("ChunkQueue.take beyond the queued bytes");
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[this.head];
    if (first === undefined) throw new RangeError("ChunkQueue is inconsistent");
    let out: Buffer;
    if (first.length - this.offset >= n) {
      out = first.subarray(this.offset, this.offset + n);
      this.advance(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const chunk = this.chunks[this.head];
        if (chunk === undefined) throw new RangeError("ChunkQueue is inconsistent");
        const count = Math.min(chunk.length - this.offset, n - filled);
        chunk.copy(out, filled, this.offset, this.offset + count);
        filled += count;
        this.advance(count);
      }
    }
    return out;
  }

  /**
   * Removes the next `n` bytes and returns them as consecutive pieces: views of the queued chunks (no copy) when
   * they span at most `maxViews` chunks, otherwise a single copied buffer (fewer, larger pieces are cheaper to
   * process than many small ones).
   */
  takePieces(n: number, maxViews = 2): Buffer[] {
    if (n > this.total) throw new RangeError("ChunkQueue.take beyond the queued bytes");
    let spanned = 0;
    for (let i = this.head, seen = -this.offset; seen < n && spanned <= maxViews; i++, spanned++) {
      seen += this.chunks[i]?.length ?? n;
    }
    if (spanned > maxViews) return [this.take(n)];
    const views: Buffer[] = [];
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[this.head];
      if (chunk === undefined) throw new RangeError("ChunkQueue is inconsistent");
      const count = Math.min(chunk.length - this.offset, left);
      views.push(chunk.subarray(this.offset, this.offset + count));
      left -= count;
      this.advance(count);
    }
    return views;
  }

  /** Drops everything queued. */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.offset = 0;
    this.total = 0;
  }

  /** Moves the read position by `count` bytes within the head chunk. */
  private advance(count: number): void {
    this.offset += count;
    this.total -= count;
    const chunk = this.chunks[this.head];
    if (chunk !== undefined && this.offset === chunk.length) {
      this.chunks[this.head] = EMPTY;
      this.head += 1;
      this.offset = 0;
      // Compact now and then so a long run of tiny chunks does not keep a long array alive.
      if (this.head === this.chunks.length) {
        this.chunks = [];
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.chunks.length) {
        this.chunks = this.chunks.slice(this.head);
        this.head = 0;
      }
    }
  }
}

const EMPTY = Buffer.alloc(0);
