/**
 * A small, honest Bicep reader for the infra tests. The Bicep compiler cannot be installed here, so these tests read
 * the source text instead. This is not a compiler and does not evaluate anything.
 *
 * What it understands:
 * - Comments (`//`, `/* *\/`) and strings (`'...'` with escapes and `${...}` interpolation, `'''...'''`), so
 *   brackets and keywords inside them are not mistaken for code.
 * - Top-level statements: `targetScope`, `param` (type, `?` nullability, default value), `var`, `resource`
 *   (symbolic name, type, API version, `existing`, `if (...)` condition, `[for ... in ...: ...]` loop), `module`
 *   (path, condition, loop), `output`, each with the decorators written above it (`@allowed([...])`,
 *   `@description(...)`, ...). `type`, `func`, `import`, `metadata` statements are skipped.
 * - Values: object and array literals (one entry per line, or comma-separated on one line), string / number /
 *   boolean / null literals. Anything else (a reference, a function call, a ternary, `[for ...]`) is kept as an
 *   expression: its source text, unevaluated.
 * - An expression may continue on the next line when that line starts with `?`, `:`, `&&`, `||`, `??` or `.`.
 *
 * What it does not understand (tests that need these must not rely on the reader, or must fail loudly):
 * - Evaluation of any kind: functions (`union`, `guid`, `uniqueString`...), variables, parameters, conditions and
 *   loops are not computed. A loop body is read once, with the loop variable unresolved.
 * - Resources declared inside another resource's body (nested child resources). Only top-level declarations are
 *   listed; `nestedResourceDeclarations` reports whether any exist so a test can insist there are none.
 * - Types: user-defined types, `resourceInput<>`, imports, `.bicepparam` files, `existing` resources' real
 *   properties, and whether a property is valid for the resource's type and API version at all.
 * - Anything a registry module (`br:`) does inside itself.
 */
import { readFileSync } from "node:fs";

export type BicepValue =
  | { readonly kind: "string"; readonly raw: string; readonly interpolated: boolean }
  | { readonly kind: "number"; readonly value: number }
  | { readonly kind: "bool"; readonly value: boolean }
  | { readonly kind: "null" }
  | { readonly kind: "object"; readonly entries: Readonly<Record<string, BicepValue>> }
  | { readonly kind: "array"; readonly items: readonly BicepValue[] }
  | { readonly kind: "expr"; readonly text: string };

export type BicepObject = Extract<BicepValue, { kind: "object" }>;

export interface Decorator {
  readonly name: string;
  /** Source text between the parentheses, or "" for a decorator without arguments. */
  readonly args: string;
}

export interface ParamDecl {
  readonly name: string;
  readonly type: string;
  /** Declared with a trailing `?` (e.g. `string?`): may be omitted by callers. */
  readonly nullable: boolean;
  readonly default?: BicepValue;
  readonly decorators: readonly Decorator[];
}

export interface Loop {
  /** Loop variable(s) as written, e.g. `container` or `(item, index)`. */
  readonly item: string;
  readonly source: string;
}

export interface ResourceDecl {
  readonly symbol: string;
  readonly type: string;
  readonly apiVersion: string;
  readonly existing: boolean;
  readonly condition?: string;
  readonly loop?: Loop;
  readonly body: BicepObject;
  readonly decorators: readonly Decorator[];
}

export interface ModuleDecl {
  readonly symbol: string;
  readonly path: string;
  readonly condition?: string;
  readonly loop?: Loop;
  readonly body: BicepObject;
  /** The `params: { ... }` object ({} when absent). */
  readonly params: Readonly<Record<string, BicepValue>>;
}

export interface OutputDecl {
  readonly name: string;
  readonly type: string;
  readonly value: BicepValue;
  readonly decorators: readonly Decorator[];
}

export interface BicepFile {
  readonly path: string;
  readonly source: string;
  /** The source with comments blanked out (same length and line breaks). */
  readonly code: string;
  readonly targetScope?: string;
  readonly params: ReadonlyMap<string, ParamDecl>;
  readonly vars: ReadonlyMap<string, BicepValue>;
  readonly resources: readonly ResourceDecl[];
  readonly modules: readonly ModuleDecl[];
  readonly outputs: ReadonlyMap<string, OutputDecl>;
  /** True when a `resource` declaration appears inside another declaration (which this reader does not list). */
  readonly nestedResourceDeclarations: boolean;
}

export class BicepReadError extends Error {
  constructor(file: string, offset: number, source: string, problem: string) {
    const line = source.slice(0, offset).split("\n").length;
    super(`${file}:${line}: ${problem}`);
    this.name = "BicepReadError";
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Scanning: strings, comments, brackets

/** Index just past the string literal starting at `i` (code[i] is `'`). Handles escapes and `${...}`. */
function skipString(code: string, i: number): number {
  if (code.startsWith("'''", i)) {
    const end = code.indexOf("'''", i + 3);
    if (end < 0) throw new Error("unterminated ''' string");
    return end + 3;
  }
  let j = i + 1;
  while (j < code.length) {
    const c = code[j];
    if (c === "\\") {
      j += 2;
    } else if (c === "'") {
      return j + 1;
    } else if (c === "$" && code[j + 1] === "{") {
      j = matchBracket(code, j + 1) + 1;
    } else {
      j++;
    }
  }
  throw new Error("unterminated string");
}

const CLOSER: Record<string, string> = { "{": "}", "[": "]", "(": ")" };

/** Index of the bracket closing the one at `i`, skipping strings and nested brackets. */
function matchBracket(code: string, i: number): number {
  const stack: string[] = [];
  let j = i;
  while (j < code.length) {
    const c = code[j]!;
    if (c === "'") {
      j = skipString(code, j);
      continue;
    }
    if (c in CLOSER) stack.push(CLOSER[c]!);
    else if (c === "}" || c === "]" || c === ")") {
      if (stack.pop() !== c) throw new Error(`mismatched '${c}'`);
      if (stack.length === 0) return j;
    }
    j++;
  }
  throw new Error("unclosed bracket");
}

/** Replaces comments with spaces, keeping every other character (and every line break) where it was. */
export function stripComments(source: string): string {
  const out = source.split("");
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    if (c === "'") {
      i = skipString(source, i);
    } else if (c === "/" && source[i + 1] === "/") {
      while (i < source.length && source[i] !== "\n") out[i++] = " ";
    } else if (c === "/" && source[i + 1] === "*") {
      const end = source.indexOf("*/", i + 2);
      const stop = end < 0 ? source.length : end + 2;
      for (; i < stop; i++) if (source[i] !== "\n") out[i] = " ";
    } else {
      i++;
    }
  }
  return out.join("");
}

const CONTINUATION = /^[ \t]*(\?\?|\?|:|&&|\|\||\.)/;

/**
 * End of the value starting at `i`: the first newline (not followed by a continuation line), `,` or unmatched
 * closing bracket at nesting depth 0, or the end of the text.
 */
function valueEnd(code: string, i: number, stopAtComma: boolean): number {
  let j = i;
  while (j < code.length) {
    const c = code[j]!;
    if (c === "'") {
      j = skipString(code, j);
      continue;
    }
    if (c in CLOSER) {
      j = matchBracket(code, j) + 1;
      continue;
    }
    if (c === "}" || c === "]" || c === ")") return j;
    if (c === "," && stopAtComma) return j;
    if (c === "\n") {
      if (CONTINUATION.test(code.slice(j + 1, j + 200).split("\n")[0] ?? "")) {
        j++;
        continue;
      }
      return j;
    }
    j++;
  }
  return j;
}

// ---------------------------------------------------------------------------------------------------------------
// Values

const NUMBER = /^-?\d+(\.\d+)?$/;

/** Classifies one value's source text. */
export function parseValue(text: string): BicepValue {
  const t = text.trim();
  if (t.startsWith("{") && matchBracket(t, 0) === t.length - 1) return parseObject(t);
  if (t.startsWith("[") && !/^\[\s*for\b/.test(t) && matchBracket(t, 0) === t.length - 1) return parseArray(t);
  if (t.startsWith("'''") && skipString(t, 0) === t.length) return { kind: "string", raw: t.slice(3, -3), interpolated: false };
  if (t.startsWith("'") && skipString(t, 0) === t.length) {
    const raw = t.slice(1, -1);
    return { kind: "string", raw, interpolated: /(^|[^\\])\$\{/.test(raw) };
  }
  if (NUMBER.test(t)) return { kind: "number", value: Number(t) };
  if (t === "true" || t === "false") return { kind: "bool", value: t === "true" };
  if (t === "null") return { kind: "null" };
  return { kind: "expr", text: t };
}

function skipSeparators(code: string, i: number): number {
  while (i < code.length && /[\s,]/.test(code[i]!)) i++;
  return i;
}

function parseObject(t: string): BicepObject {
  const entries: Record<string, BicepValue> = {};
  const inner = t.slice(1, -1);
  let i = 0;
  for (;;) {
    i = skipSeparators(inner, i);
    if (i >= inner.length) break;
    const nested = /^resource\s+[A-Za-z_]\w*\s+'[^']*'(\s+existing)?\s*=\s*/.exec(inner.slice(i));
    if (nested) {
      // A nested resource declaration: skipped (see the header); parseBicep reports that one exists.
      i = valueEnd(inner, i + nested[0].length, false);
      continue;
    }
    let key: string;
    if (inner[i] === "'") {
      const end = skipString(inner, i);
      key = inner.slice(i + 1, end - 1);
      i = end;
    } else {
      const m = /^[A-Za-z_$][\w$]*/.exec(inner.slice(i));
      if (!m) throw new Error(`expected a property name at: ${inner.slice(i, i + 40)}`);
      key = m[0];
      i += key.length;
    }
    while (inner[i] === " " || inner[i] === "\t") i++;
    if (inner[i] !== ":") throw new Error(`expected ':' after property ${key}`);
    i++;
    while (inner[i] === " " || inner[i] === "\t") i++;
    const end = valueEnd(inner, i, true);
    entries[key] = parseValue(inner.slice(i, end));
    i = end;
  }
  return { kind: "object", entries };
}

function parseArray(t: string): BicepValue {
  const items: BicepValue[] = [];
  const inner = t.slice(1, -1);
  let i = 0;
  for (;;) {
    i = skipSeparators(inner, i);
    if (i >= inner.length) break;
    const end = valueEnd(inner, i, true);
    items.push(parseValue(inner.slice(i, end)));
    i = end;
  }
  return { kind: "array", items };
}

// ---------------------------------------------------------------------------------------------------------------
// Statements

const IDENT = /^[A-Za-z_][\w]*/;

function parseLoopOrBody(file: string, source: string, text: string, offset: number) {
  let t = text.trim();
  let loop: Loop | undefined;
  if (t.startsWith("[")) {
    const m = /^\[\s*for\s+(\([^)]*\)|[A-Za-z_]\w*)\s+in\s+/.exec(t);
    if (!m) throw new BicepReadError(file, offset, source, "unsupported array value for a resource or module");
    const rest = t.slice(m[0].length, t.length - 1);
    const colon = valueEnd(rest.replace(/:/g, "\n"), 0, false); // first ':' at depth 0
    loop = { item: m[1]!, source: rest.slice(0, colon).trim() };
    t = rest.slice(colon + 1).trim();
  }
  let condition: string | undefined;
  if (t.startsWith("if")) {
    const open = t.indexOf("(");
    const close = matchBracket(t, open);
    condition = t.slice(open + 1, close).trim();
    t = t.slice(close + 1).trim();
  }
  const body = parseValue(t);
  if (body.kind !== "object") throw new BicepReadError(file, offset, source, "expected an object body");
  return { loop, condition, body };
}

/** Reads one Bicep file. Throws BicepReadError (with file and line) on text it cannot follow. */
export function readBicep(path: string): BicepFile {
  const source = readFileSync(path, "utf8").replace(/\r\n/g, "\n");
  return parseBicep(source, path);
}

export function parseBicep(source: string, path = "<inline>"): BicepFile {
  const code = stripComments(source);
  const params = new Map<string, ParamDecl>();
  const vars = new Map<string, BicepValue>();
  const resources: ResourceDecl[] = [];
  const modules: ModuleDecl[] = [];
  const outputs = new Map<string, OutputDecl>();
  let targetScope: string | undefined;
  let decorators: Decorator[] = [];

  let i = 0;
  const fail = (problem: string): never => {
    throw new BicepReadError(path, i, source, problem);
  };
  const skipWs = () => {
    while (i < code.length && /\s/.test(code[i]!)) i++;
  };
  const word = (): string => {
    skipWs();
    const m = IDENT.exec(code.slice(i));
    if (!m) return fail(`expected a name at: ${code.slice(i, i + 30)}`);
    i += m[0].length;
    return m[0];
  };
  const quoted = (): string => {
    skipWs();
    if (code[i] !== "'") return fail("expected a string");
    const end = skipString(code, i);
    const s = code.slice(i + 1, end - 1);
    i = end;
    return s;
  };
  const expect = (c: string) => {
    skipWs();
    if (code[i] !== c) fail(`expected '${c}'`);
    i++;
  };
  const valueText = (): string => {
    skipWs();
    const end = valueEnd(code, i, false);
    const text = code.slice(i, end);
    i = end;
    return text;
  };
  /** A type (possibly an inline object type) followed by an optional `= value` on the same statement. */
  const typeText = (): string => {
    while (code[i] === " " || code[i] === "\t") i++;
    const start = i;
    while (i < code.length && code[i] !== "=" && code[i] !== "\n") {
      if (code[i] === "{" || code[i] === "(" || code[i] === "[") i = matchBracket(code, i);
      else if (code[i] === "'") i = skipString(code, i) - 1;
      i++;
    }
    return code.slice(start, i).trim();
  };

  for (;;) {
    skipWs();
    if (i >= code.length) break;
    if (code[i] === "@") {
      i++;
      const m = /^[A-Za-z_][\w.]*/.exec(code.slice(i));
      if (!m) fail("expected a decorator name");
      i += m![0].length;
      let args = "";
      if (code[i] === "(") {
        const close = matchBracket(code, i);
        args = code.slice(i + 1, close).trim();
        i = close + 1;
      }
      decorators.push({ name: m![0].replace(/^sys\./, ""), args });
      continue;
    }
    const statementStart = i;
    const keyword = word();
    try {
      switch (keyword) {
        case "targetScope": {
          expect("=");
          targetScope = quoted();
          break;
        }
        case "param": {
          const name = word();
          const type = typeText();
          let def: BicepValue | undefined;
          if (code[i] === "=") {
            i++;
            def = parseValue(valueText());
          }
          params.set(name, { name, type: type.replace(/\?$/, ""), nullable: type.endsWith("?"), default: def, decorators });
          break;
        }
        case "var": {
          const name = word();
          expect("=");
          vars.set(name, parseValue(valueText()));
          break;
        }
        case "resource": {
          const symbol = word();
          const at = i;
          const typeRef = quoted();
          const [type, apiVersion] = typeRef.split("@");
          if (!type || !apiVersion) fail(`resource ${symbol}: type '${typeRef}' has no @apiVersion`);
          skipWs();
          let existing = false;
          if (code.startsWith("existing", i)) {
            existing = true;
            i += "existing".length;
          }
          expect("=");
          const { loop, condition, body } = parseLoopOrBody(path, source, valueText(), at);
          resources.push({ symbol, type: type!, apiVersion: apiVersion!, existing, condition, loop, body, decorators });
          break;
        }
        case "module": {
          const symbol = word();
          const at = i;
          const modulePath = quoted();
          expect("=");
          const { loop, condition, body } = parseLoopOrBody(path, source, valueText(), at);
          const p = body.entries.params;
          if (p !== undefined && p.kind !== "object") fail(`module ${symbol}: params is not an object literal`);
          modules.push({ symbol, path: modulePath, loop, condition, body, params: p?.kind === "object" ? p.entries : {} });
          break;
        }
        case "output": {
          const name = word();
          const type = word();
          expect("=");
          outputs.set(name, { name, type, value: parseValue(valueText()), decorators });
          break;
        }
        case "type":
        case "func":
        case "metadata":
        case "import":
        case "extension":
        case "using": {
          const eq = code.indexOf("\n", i);
          const rest = code.slice(i, eq < 0 ? code.length : eq);
          i += rest.includes("=") ? rest.indexOf("=") + 1 : rest.length;
          valueText();
          break;
        }
        default:
          fail(`unexpected '${keyword}' at the top level`);
      }
    } catch (err) {
      if (err instanceof BicepReadError) throw err;
      throw new BicepReadError(path, statementStart, source, `${keyword}: ${err instanceof Error ? err.message : String(err)}`);
    }
    decorators = [];
  }

  // A `resource` keyword at the start of an indented line sits inside another declaration.
  const nestedResourceDeclarations = /\n[ \t]+resource\s+[A-Za-z_]\w*\s+'/.test(code);
  return { path, source, code, targetScope, params, vars, resources, modules, outputs, nestedResourceDeclarations };
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers for tests

/** The value at a dotted path inside objects, e.g. get(resource.body, "properties.siteConfig.minTlsVersion"). */
export function get(value: BicepValue | undefined, path: string): BicepValue | undefined {
  let v = value;
  for (const key of path.split(".")) {
    if (v?.kind !== "object") return undefined;
    v = v.entries[key];
  }
  return v;
}

/** Unescapes a string literal's raw text (`\'`, `\\`, `\n`, `\r`, `\t`, `\$`). */
export function unescape(raw: string): string {
  return raw.replace(/\\(['\\nrt$])/g, (_, c: string) => ({ n: "\n", r: "\r", t: "\t" })[c] ?? c);
}

/**
 * The JavaScript value of a literal (strings without interpolation, numbers, booleans, null, and objects/arrays of
 * those). Returns undefined when any part is an expression or an interpolated string.
 */
export function literal(value: BicepValue | undefined): unknown {
  if (!value) return undefined;
  switch (value.kind) {
    case "string":
      return value.interpolated ? undefined : unescape(value.raw);
    case "number":
    case "bool":
      return value.value;
    case "null":
      return null;
    case "array": {
      const items = value.items.map(literal);
      return items.includes(undefined) ? undefined : items;
    }
    case "object": {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value.entries)) {
        const l = literal(v);
        if (l === undefined) return undefined;
        out[k] = l;
      }
      return out;
    }
    case "expr":
      return undefined;
  }
}

/** Short human-readable form of a value, for failure messages. */
export function show(value: BicepValue | undefined): string {
  if (!value) return "(absent)";
  switch (value.kind) {
    case "string":
      return `'${value.raw}'`;
    case "expr":
      return value.text.replace(/\s+/g, " ");
    default:
      return JSON.stringify(literal(value) ?? value);
  }
}

export type InterpolationPart = { readonly text: string } | { readonly expr: string };

/** Splits a string literal's raw text into literal text and `${...}` expressions. */
export function interpolationParts(raw: string): InterpolationPart[] {
  const parts: InterpolationPart[] = [];
  let text = "";
  let i = 0;
  while (i < raw.length) {
    if (raw[i] === "\\") {
      text += raw.slice(i, i + 2);
      i += 2;
    } else if (raw[i] === "$" && raw[i + 1] === "{") {
      const close = matchBracket(raw, i + 1);
      if (text) parts.push({ text: unescape(text) });
      text = "";
      parts.push({ expr: raw.slice(i + 2, close).trim() });
      i = close + 1;
    } else {
      text += raw[i++];
    }
  }
  if (text) parts.push({ text: unescape(text) });
  return parts;
}

/** Decorator argument parsed as a value (e.g. the array of `@allowed([...])`), or undefined when absent. */
export function decoratorValue(decorators: readonly Decorator[], name: string): BicepValue | undefined {
  const d = decorators.find((x) => x.name === name);
  return d ? parseValue(d.args) : undefined;
}
