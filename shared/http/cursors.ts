/**
 * Page cursors as callers see them: opaque, and verified before anything in them is used.
 *
 * A store pages with its own cursor (a Cosmos continuation token, see shared/stores/cosmos.ts). Before it leaves the
 * service it is sealed, and a cursor that comes back is opened, by the endpoint wrapper (endpoint.ts), so no text a
 * caller wrote can reach the database's continuation header:
 *
 *   cursor = base64url( 0x01 ‖ tag (32 bytes) ‖ store cursor (UTF-8) ), unpadded
 *   tag    = HMAC-SHA256(K, encodeAssociatedData("safedata-cursor-v1", endpoint, filters, store cursor))
 *
 * K is the scope's cursor key (scope-keys.ts: per tenant, or the operators'), so a cursor works only for the tenant
 * it was made for; `endpoint` (the operation's name) and `filters` (the request's other query parameters, except the
 * page size, as canonical JSON) bind it to the list and the query it continues. Opening anything else, or a cursor
 * changed in any byte, is a 400 `invalid-parameter`.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { encodeAssociatedData } from "../crypto";
import { AppError } from "../errors";

const VERSION = 0x01;
const TAG_BYTES = 32;
const PURPOSE = "safedata-cursor-v1";

/** What a cursor belongs to: the operation and the query parameters (other than the cursor and page size) it continues. */
export interface CursorBinding {
  readonly endpoint: string;
  readonly filters: Readonly<Record<string, unknown>>;
}

/** Canonical JSON of the filters: keys sorted, absent values left out. */
function canonicalFilters(filters: Readonly<Record<string, unknown>>): string {
  const entries = Object.entries(filters)
    .filter(([, v]) => v !== undefined)
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  return JSON.stringify(entries);
}

function tag(key: Buffer, binding: CursorBinding, inner: string): Buffer {
  return createHmac("sha256", key).update(encodeAssociatedData(PURPOSE, binding.endpoint, canonicalFilters(binding.filters), inner)).digest();
}

/** The cursor a caller gets for the store cursor `inner`. */
export function sealCursor(key: Buffer, binding: CursorBinding, inner: string): string {
  return Buffer.concat([Buffer.of(VERSION), tag(key, binding, inner), Buffer.from(inner, "utf8")]).toString("base64url");
}

const notOurs = () => new AppError("invalid-parameter", "cursor is not one this list returned for this query; repeat the query without it to start again");

/**
 * The store cursor inside a caller's `cursor`, once its tag proves the service made it for this scope, operation and
 * query. Throws AppError `invalid-parameter` for anything else.
 */
export function openCursor(key: Buffer, binding: CursorBinding, cursor: string): string {
  const bytes = Buffer.from(cursor, "base64url");
  // base64url decoding skips what it cannot read: only a cursor that encodes back to itself is the one we wrote.
  if (bytes.toString("base64url") !== cursor || bytes.length <= 1 + TAG_BYTES || bytes[0] !== VERSION) throw notOurs();
  let inner: string;
  try {
    inner = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(1 + TAG_BYTES));
  } catch {
    throw notOurs();
  }
  if (!timingSafeEqual(bytes.subarray(1, 1 + TAG_BYTES), tag(key, binding, inner))) throw notOurs();
  return inner;
}
