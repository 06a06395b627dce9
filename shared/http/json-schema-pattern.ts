/**
 * Regular expressions as JSON Schema `pattern`s. A pattern has no flags (JSON Schema 2020-12 §6.3.3, ECMA-262
 * syntax), but the OpenAPI generator writes a zod regex with flags as `source/flags` (`^a$/i`), which matches nothing.
 * `jsonSchemaPattern` turns that into a flag-free pattern with the same meaning for the flags that change what matches:
 *
 * - `i`: every ASCII letter outside a class becomes `[xX]`; a class gains the other case of the ASCII letters it
 *   holds (ranges included: `[a-f]` -> `[a-fA-F]`, `[\x23-\x5b]` also gets `a-z`), which is also right for a negated
 *   class (ECMA-262 §22.2.2.9.3 Canonicalize: the class is compared case-folded). Letters outside ASCII keep their
 *   case: no pattern of this API has them.
 * - `s`: `.` outside a class becomes `[\s\S]`.
 * - `g`, `y`, `d`, `u`, `v` do not change what a whole-value test matches here and are dropped; `m` has no
 *   flag-free form and throws (no schema of this API uses it).
 *
 * A pattern without a trailing `/flags` is returned unchanged. (A RegExp's source always escapes `/`, so an unescaped
 * `/` followed only by flag letters can only be the generator's delimiter.)
 */

const FLAGS_SUFFIX = /\/([dgimsuyv]+)$/;

/** The pattern `text` as JSON Schema reads it: see the module comment. */
export function jsonSchemaPattern(text: string): string {
  const m = FLAGS_SUFFIX.exec(text);
  if (!m) return text;
  const slash = m.index;
  let backslashes = 0;
  while (slash - 1 - backslashes >= 0 && text[slash - 1 - backslashes] === "\\") backslashes++;
  if (backslashes % 2 === 1) return text; // an escaped "/": part of the pattern
  const flags = m[1]!;
  if (flags.includes("m")) throw new Error("a pattern with the m flag has no JSON Schema form");
  return rewrite(text.slice(0, slash), flags.includes("i"), flags.includes("s"));
}

const isUpper = (c: number) => c >= 0x41 && c <= 0x5a;
const isLower = (c: number) => c >= 0x61 && c <= 0x7a;
const hex = (c: number) => `\\x${c.toString(16).padStart(2, "0")}`;

/** Reads the escape at `i` (a backslash); returns its text and, when it stands for one character, that character. */
function readEscape(src: string, i: number): { text: string; code?: number } {
  const next = src[i + 1];
  if (next === undefined) return { text: "\\" };
  if (next === "x") return { text: src.slice(i, i + 4), code: parseInt(src.slice(i + 2, i + 4), 16) };
  if (next === "u") {
    if (src[i + 2] === "{") {
      const end = src.indexOf("}", i);
      return { text: src.slice(i, end + 1), code: parseInt(src.slice(i + 3, end), 16) };
    }
    return { text: src.slice(i, i + 6), code: parseInt(src.slice(i + 2, i + 6), 16) };
  }
  if ((next === "p" || next === "P") && src[i + 2] === "{") return { text: src.slice(i, src.indexOf("}", i) + 1) };
  if (next === "k" && src[i + 2] === "<") return { text: src.slice(i, src.indexOf(">", i) + 1) };
  if (next === "c") return { text: src.slice(i, i + 3), code: src.charCodeAt(i + 2) % 32 };
  const controls: Record<string, number> = { t: 9, n: 10, v: 11, f: 12, r: 13, "0": 0 };
  if (next in controls && !(next === "0" && /[0-9]/.test(src[i + 2] ?? ""))) return { text: src.slice(i, i + 2), code: controls[next] };
  if (/[dDwWsSbB1-9]/.test(next)) {
    let j = i + 2;
    if (/[1-9]/.test(next)) while (/[0-9]/.test(src[j] ?? "")) j++;
    return { text: src.slice(i, j) };
  }
  return { text: src.slice(i, i + 2), code: next.charCodeAt(0) };
}

/** The other case of the ASCII letters in [lo, hi], as class items. */
function otherCase(lo: number, hi: number): string {
  let out = "";
  const upper = [Math.max(lo, 0x41), Math.min(hi, 0x5a)];
  const lower = [Math.max(lo, 0x61), Math.min(hi, 0x7a)];
  if (upper[0]! <= upper[1]!) out += upper[0] === upper[1] ? hex(upper[0]! + 32) : `${hex(upper[0]! + 32)}-${hex(upper[1]! + 32)}`;
  if (lower[0]! <= lower[1]!) out += lower[0] === lower[1] ? hex(lower[0]! - 32) : `${hex(lower[0]! - 32)}-${hex(lower[1]! - 32)}`;
  return out;
}

/** A class starting at `i` (`[`): its text and where it ends; with `i`, the other case of its letters is added. */
function readClass(src: string, i: number, caseless: boolean): { text: string; end: number } {
  let j = i + 1;
  let head = "[";
  if (src[j] === "^") {
    head += "^";
    j++;
  }
  let body = "";
  let extra = "";
  while (j < src.length && src[j] !== "]") {
    let text: string;
    let code: number | undefined;
    if (src[j] === "\\") ({ text, code } = readEscape(src, j));
    else {
      text = src[j]!;
      code = src.charCodeAt(j);
    }
    j += text.length;
    if (src[j] === "-" && src[j + 1] !== "]" && code !== undefined) {
      // A range lo-hi.
      let hiText: string;
      let hi: number | undefined;
      if (src[j + 1] === "\\") ({ text: hiText, code: hi } = readEscape(src, j + 1));
      else {
        hiText = src[j + 1]!;
        hi = src.charCodeAt(j + 1);
      }
      body += `${text}-${hiText}`;
      j += 1 + hiText.length;
      if (caseless && hi !== undefined) extra += otherCase(code, hi);
      continue;
    }
    body += text;
    if (caseless && code !== undefined) extra += otherCase(code, code);
  }
  // The added letters go first: after the class's own items a trailing literal "-" would join them into a range.
  return { text: `${head}${extra}${extra && body.startsWith("-") ? "\\" : ""}${body}]`, end: j + 1 };
}

function rewrite(src: string, caseless: boolean, dotAll: boolean): string {
  let out = "";
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (c === "\\") {
      const { text, code } = readEscape(src, i);
      // An escaped letter (\x41, \u0061) folds as the letter does.
      out += caseless && code !== undefined && otherCase(code, code) !== "" ? `[${text}${otherCase(code, code)}]` : text;
      i += text.length;
    } else if (c === "[") {
      const { text, end } = readClass(src, i, caseless);
      out += text;
      i = end;
    } else if (c === "(" && src[i + 1] === "?") {
      // Group syntax: (?: (?= (?! (?<= (?<! (?<name> — names are not letters to fold.
      const named = /^\(\?<(?![=!])[^>]*>/.exec(src.slice(i));
      const len = named ? named[0].length : src[i + 2] === "<" ? 4 : 3;
      out += src.slice(i, i + len);
      i += len;
    } else if (c === "{" && /^\{\d+(,\d*)?\}/.test(src.slice(i))) {
      const q = /^\{\d+(,\d*)?\}/.exec(src.slice(i))![0];
      out += q;
      i += q.length;
    } else if (caseless && (isUpper(c.charCodeAt(0)) || isLower(c.charCodeAt(0)))) {
      out += `[${c.toLowerCase()}${c.toUpperCase()}]`;
      i++;
    } else if (dotAll && c === ".") {
      out += "[\\s\\S]";
      i++;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
