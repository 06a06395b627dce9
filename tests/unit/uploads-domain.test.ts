import { readFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import {
  admitDownload,
  canTransition,
  expiresAt,
  maskEmail,
  mediaTypeEssence,
  MIME_TYPE,
  newUploadId,
  parseRange,
  PLAIN_CHARSETS,
  plainContentType,
  hasControlOrFormat,
  RECEIVING_LEASE_MS,
  UPLOAD_ID_PATTERN,
} from "../../shared/domain/uploads";
import { parse as parseContentDisposition } from "content-disposition";
import { contentDisposition, isHeaderSafe } from "../../shared/http/content-headers";

const DAY = 86_400_000;

describe("upload rules", () => {
  it("lives 32 days unless asked for less, never more", () => {
    const t0 = new Date("2026-03-01T12:00:00Z");
    expect(expiresAt(t0).getTime() - t0.getTime()).toBe(32 * DAY);
    expect(expiresAt(t0, 5).getTime() - t0.getTime()).toBe(5 * DAY);
    expect(() => expiresAt(t0, 33)).toThrow(RangeError);
    expect(() => expiresAt(t0, 0)).toThrow(RangeError);
    expect(() => expiresAt(t0, 1.5)).toThrow(RangeError);
  });

  it("makes ids in the documented format", () => {
    expect(newUploadId()).toMatch(UPLOAD_ID_PATTERN);
  });

  it("moves only along the state machine", () => {
    expect(canTransition("awaiting-content", "receiving")).toBe(true);
    expect(canTransition("receiving", "awaiting-content")).toBe(true);
    expect(canTransition("available", "receiving")).toBe(false);
    expect(canTransition("deleted", "available")).toBe(false);
    expect(canTransition("expired", "deleting")).toBe(false);
    expect(canTransition("deleting", "expired")).toBe(true);
  });

  it("admits a download only while available, unexpired and under the limit", () => {
    const base = { status: "available" as const, expiresAt: "2026-03-10T00:00:00.000Z", downloads: 0, maxDownloads: 2 };
    const before = new Date("2026-03-09T23:59:59.999Z");
    expect(admitDownload(base, before)).toEqual({ ok: true });
    expect(admitDownload(base, new Date("2026-03-10T00:00:00.000Z"))).toMatchObject({ ok: false, problem: "upload-expired" });
    expect(admitDownload({ ...base, downloads: 2 }, before)).toMatchObject({ ok: false, problem: "download-limit-reached" });
    expect(admitDownload({ ...base, status: "awaiting-content" }, before)).toMatchObject({ ok: false, problem: "conflict" });
    expect(admitDownload({ ...base, status: "deleted" }, before)).toMatchObject({ ok: false, problem: "upload-deleted" });
    expect(admitDownload({ ...base, status: "expired" }, before)).toMatchObject({ ok: false, problem: "upload-expired" });
    expect(admitDownload({ ...base, status: "deleting", deletionReason: "expired" }, before)).toMatchObject({ ok: false, problem: "upload-expired" });
  });

  it("parses single byte ranges and refuses the rest", () => {
    expect(parseRange(null, 100)).toEqual({ kind: "none" });
    expect(parseRange("bytes=0-9", 100)).toEqual({ kind: "range", start: 0, end: 9 });
    expect(parseRange("bytes=90-", 100)).toEqual({ kind: "range", start: 90, end: 99 });
    expect(parseRange("bytes=-10", 100)).toEqual({ kind: "range", start: 90, end: 99 });
    expect(parseRange("bytes=-1000", 100)).toEqual({ kind: "range", start: 0, end: 99 });
    expect(parseRange("bytes=50-5000", 100)).toEqual({ kind: "range", start: 50, end: 99 });
    expect(parseRange("bytes=100-", 100)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=-0", 100)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=0-0", 0)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("Bytes=0-9", 100)).toEqual({ kind: "range", start: 0, end: 9 });
    expect(parseRange("bytes= 1-2", 100)).toEqual({ kind: "range", start: 1, end: 2 });
    expect(parseRange("bytes=1-2,", 100)).toEqual({ kind: "range", start: 1, end: 2 });
    for (const ignored of ["bytes=0-1,5-6", "bits=0-1", "items=x", "bytes=0-1,junk"]) expect(parseRange(ignored, 100).kind, ignored).toBe("none");
    for (const bad of ["bytes=9-1", "bytes=-", "bytes=a-b", "", "bytes", "=0-1", "bytes=1x-2", "bytes=+1-2", "bytes=0x1-2", "b ytes=0-1"]) {
      expect(parseRange(bad, 100).kind, bad).toBe("malformed");
    }
  });

  it("reads every well-formed single byte range as RFC 9110 §14.1.2-3 defines it (property)", () => {
    const unit = fc.constantFrom("bytes", "Bytes", "BYTES", "bYtEs");
    fc.assert(
      fc.property(fc.nat(5000), unit, fc.nat(6000), fc.option(fc.nat(6000)), (size, u, first, last) => {
        const r = parseRange(`${u}=${first}-${last ?? ""}`, size);
        if (last !== null && last < first) return expect(r.kind).toBe("malformed");
        if (first >= size) return expect(r.kind).toBe("unsatisfiable");
        expect(r).toEqual({ kind: "range", start: first, end: Math.min(last ?? size - 1, size - 1) });
      }),
    );
    fc.assert(
      fc.property(fc.nat(5000), unit, fc.nat(6000), (size, u, suffix) => {
        const r = parseRange(`${u}=-${suffix}`, size);
        if (suffix === 0 || size === 0) return expect(r.kind).toBe("unsatisfiable");
        expect(r).toEqual({ kind: "range", start: Math.max(0, size - suffix), end: size - 1 });
      }),
    );
  });

  it("range parsing never returns a range outside the content (property)", () => {
    fc.assert(
      fc.property(fc.nat(10_000), fc.string({ maxLength: 30 }), (size, header) => {
        const r = parseRange(header, size);
        if (r.kind === "range") {
          expect(r.start).toBeGreaterThanOrEqual(0);
          expect(r.end).toBeLessThan(size);
          expect(r.start).toBeLessThanOrEqual(r.end);
        }
      }),
    );
  });

  it("writes Content-Disposition with an ASCII fallback and the exact UTF-8 name", () => {
    expect(contentDisposition('løn "2026".pdf')).toBe(`attachment; filename="l_n _2026_.pdf"; filename*=UTF-8''l%C3%B8n%20%222026%22.pdf`);
    expect(contentDisposition("report.pdf")).toBe('attachment; filename="report.pdf"');
    expect(contentDisposition("2026/report.pdf")).toBe('attachment; filename="report.pdf"');
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }).filter((n) => !/[/\\]/.test(n)), (name) => {
        const header = contentDisposition(name);
        expect(header).not.toMatch(/[\r\n]/);
        expect(/^[\x20-\x7e]*$/.test(header)).toBe(true);
        // Read back as a client does (filename* first): the exact name.
        expect(parseContentDisposition(header).parameters.filename).toBe(name);
      }),
    );
  });

  it("masks addresses and compares media types by their essence", () => {
    expect(maskEmail("anna@example.com")).toBe("a***@example.com");
    expect(maskEmail("broken")).toBe("***");
    expect(mediaTypeEssence("Application/PDF; charset=binary")).toBe("application/pdf");
  });
});

describe("the receiving lease", () => {
  it("outlasts the function timeout (so a live attempt is never taken over) by at most a small margin", () => {
    const hostJson = JSON.parse(readFileSync(path.join(__dirname, "../../host.json"), "utf8")) as { functionTimeout: string };
    const [h, m, s] = hostJson.functionTimeout.split(":").map(Number) as [number, number, number];
    const timeoutMs = ((h * 60 + m) * 60 + s) * 1000;
    expect(RECEIVING_LEASE_MS).toBeGreaterThan(timeoutMs);
    expect(RECEIVING_LEASE_MS - timeoutMs).toBeLessThanOrEqual(10 * 60_000);
  });
});

describe("content types and header values", () => {
  it.each([
    ["text/plain", true],
    ['application/pdf; name="a b.pdf"', true],
    ['text/plain; a="q\\"x"', true],
    ['text/plain; a="x\r\nSet-Cookie: p=1"', false],
    ['application/pdf; name="报告.pdf"', false],
    ["text/plain;\na=b", false],
  ])("MIME_TYPE accepts %j: %s", (value, ok) => {
    expect(MIME_TYPE.test(value)).toBe(ok);
    if (ok) expect(isHeaderSafe(value)).toBe(true);
  });

  it.each([
    ["application/pdf", "application/pdf"],
    ['application/pdf; name="Carla Jensen.pdf"', "application/pdf"],
    ["Text/Plain; Charset=UTF-8", "text/plain; charset=utf-8"],
    ['text/plain; name="x;y"; charset="iso-8859-1"', "text/plain; charset=iso-8859-1"],
    ['text/plain; charset="Carla Jensen"', "text/plain"],
    ["text/csv; header=present; charset=us-ascii", "text/csv; charset=us-ascii"],
    ['application/pdf; name="x\r\ny"', "application/pdf"],
  ])("plainContentType keeps of %j only %j", (declared, plain) => {
    expect(plainContentType(declared)).toBe(plain);
  });

  it("plainContentType never keeps a parameter other than an allow-listed charset (property)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme-ascii", maxLength: 40 }), fc.constantFrom("name", "filename", "x-person", "charset"), (value, param) => {
        const plain = plainContentType(`application/pdf; ${param}="${value.replace(/["\\]/g, "")}"`);
        const kept = plain.split(";")[1]?.trim();
        if (kept !== undefined) expect(PLAIN_CHARSETS.has(kept.replace(/^charset=/, ""))).toBe(true);
      }),
    );
  });

  it("hasControlOrFormat finds Unicode Cc and Cf characters and nothing else", () => {
    for (const bad of ["\u202E", "\u200B", "\u200D", "\uFEFF", "\u0000", "\u001F", "\u007F", "\u0085", "\u009F", "\u2066", "\u00AD", "\u{E0001}"]) {
      expect(hasControlOrFormat(`a${bad}b`), JSON.stringify(bad)).toBe(true);
    }
    for (const good of ["løn 2026 – Carl.pdf", "報告書.pdf", "नमस्ते", "e\u0301", "a b", "😀.png"]) expect(hasControlOrFormat(good), good).toBe(false);
  });

  it("isHeaderSafe refuses control characters, non-ASCII and surrounding whitespace", () => {
    for (const bad of ["a\nb", "a\rb", "a\0b", "é", " a", "a ", ""]) expect(isHeaderSafe(bad)).toBe(false);
    expect(isHeaderSafe("a\tb c")).toBe(true);
  });
});
