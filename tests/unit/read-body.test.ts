/**
 * readBodyText, the one reader of JSON request bodies: a body that stops arriving is a 408 request-timeout however the
 * stream's cancellation settles, and a body that ends before its declared Content-Length is never taken as complete.
 */
import { describe, it } from "@jest/globals";
import type { HttpRequest } from "@azure/functions";
import { expect } from "../helpers/expect";
import { readBodyText } from "../../shared/http/endpoint";
import { AppError } from "../../shared/errors";

type ReadResult = { done: true; value: undefined } | { done: false; value: Uint8Array };

/** The two things readBodyText uses of a request: its headers and its body stream. */
function requestOf(body: ReadableStream<Uint8Array>, contentLength?: number): HttpRequest {
  const headers = new Headers(contentLength === undefined ? {} : { "content-length": String(contentLength) });
  return { headers, body } as unknown as HttpRequest;
}

async function kindOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "resolved";
  } catch (err) {
    return err instanceof AppError ? err.kind : `other: ${(err as Error).message}`;
  }
}

describe("readBodyText", () => {
  it("answers 408 when part of the body came and then nothing (the pending read is not taken as the end)", async () => {
    const body = new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(new TextEncoder().encode('{"key":"x"}')) });
    expect(await kindOf(readBodyText(requestOf(body, 100), 1000, 200))).toBe("request-timeout");
  });

  it("answers 408 when cancelling the stalled read settles it as the end of the body at once (as WHATWG streams do)", async () => {
    // A reader whose cancel() settles the pending read with {done: true} before anything else can run, in this realm
    // (Jest's own streams come from another realm, whose promises settle a tick later and hide the race).
    const chunks = [new TextEncoder().encode('{"key":"x"}')];
    let pending: ((r: ReadResult) => void) | undefined;
    const reader = {
      read: () => (chunks.length > 0 ? Promise.resolve({ done: false as const, value: chunks.shift()! }) : new Promise<ReadResult>((r) => (pending = r))),
      cancel: () => {
        pending?.({ done: true, value: undefined });
        return Promise.resolve();
      },
    };
    const body = { getReader: () => reader } as unknown as ReadableStream<Uint8Array>;
    expect(await kindOf(readBodyText(requestOf(body, 100), 1000, 200))).toBe("request-timeout");
    chunks.push(new TextEncoder().encode('{"key":"x"}'));
    expect(await kindOf(readBodyText(requestOf(body), 1000, 200))).toBe("request-timeout");
  });

  it("answers 408 when no byte of the body came", async () => {
    const body = new ReadableStream<Uint8Array>({ start: () => undefined });
    expect(await kindOf(readBodyText(requestOf(body, 100), 1000, 200))).toBe("request-timeout");
  });

  it("refuses a body that ends before its declared Content-Length (400 malformed-request, never parsed)", async () => {
    const body = new ReadableStream<Uint8Array>({
      start: (c) => {
        c.enqueue(new TextEncoder().encode('{"key":"x"}'));
        c.close();
      },
    });
    expect(await kindOf(readBodyText(requestOf(body, 100), 1000, 200))).toBe("malformed-request");
  });

  it("reads a whole body, with or without a Content-Length", async () => {
    const make = () =>
      new ReadableStream<Uint8Array>({
        start: (c) => {
          c.enqueue(new TextEncoder().encode('{"key":'));
          c.enqueue(new TextEncoder().encode('"x"}'));
          c.close();
        },
      });
    expect(await readBodyText(requestOf(make(), 11), 1000, 200)).toBe('{"key":"x"}');
    expect(await readBodyText(requestOf(make()), 1000, 200)).toBe('{"key":"x"}');
  });
});
