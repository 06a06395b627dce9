/**
 * Accept for routes that send one stored file (RFC 9110 §12.5.1): the file has one media type, known once its record
 * is read; a request whose Accept header allows no such type gets 406 `not-acceptable` (problem+json, the README's
 * HTTP conventions) instead of the file, before anything is read, counted or audited. No Accept header accepts
 * anything. Matching (wildcards, q=0) is the `negotiator` library's, as on the routes that negotiate between types.
 */
import Negotiator from "negotiator";
import { AppError } from "../errors";

/** The media type without parameters, lower case: `text/html; charset=utf-8` -> `text/html`. */
const essence = (type: string): string => type.split(";")[0]!.trim().toLowerCase();

/** Whether an Accept header (null: none sent) allows `type`. */
export function acceptsMediaType(accept: string | null, type: string): boolean {
  if (accept === null) return true;
  return new Negotiator({ headers: { accept } }).mediaType([essence(type)]) !== undefined;
}

/**
 * A check for a use case that opens a stored file: throws `not-acceptable` naming the file's type when the request's
 * Accept header does not allow it. `what` names the file in the problem's detail ("the evidence file").
 */
export function acceptCheck(accept: string | null, what: string): (type: string) => void {
  return (type) => {
    if (!acceptsMediaType(accept, type)) {
      throw new AppError("not-acceptable", `${what} is ${essence(type)}; send an Accept header that allows it, or none`);
    }
  };
}
