/**
 * E-mail templates. Every message the service sends to a person or a tenant comes from a template file per language,
 * `templates/email/<name>.<language>.mustache`, with three parts, each introduced by a line of its own:
 *
 *     --- subject ---
 *     Your upload {{uploadId}} was downloaded
 *     --- text ---
 *     plain-text body
 *     --- html ---
 *     <p>HTML body</p>
 *
 * They are rendered by Mustache, a logic-less engine, with views that are plain data only (strings, numbers,
 * booleans, null, arrays and plain objects: no functions, so a template can never run code; engines that evaluate
 * expressions in templates are a known injection route). The rules, checked when the templates are loaded and when a
 * message is rendered:
 * - the HTML part is HTML-escaped (Mustache's `{{name}}`); unescaped output (`{{{name}}}`, `{{&name}}`), partials
 *   (`{{>name}}`) and delimiter changes are refused in every part;
 * - a placeholder the view does not provide fails the rendering (Mustache alone would print nothing);
 * - the subject renders to one line;
 * - every template exists in every language.
 * The subject and the text are not HTML: they are rendered without escaping, and the e-mail adapter sends them as
 * text (the MIME encoding of UTF-8 headers and bodies, RFC 2045/2047, is the transport's job: ACS in Azure, the
 * local outbox's MIME writer in dev/).
 */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import Mustache from "mustache";
import { LANGUAGES, type Language } from "../domain/language";

export { LANGUAGES, type Language };

/** What a view may hold: data, never behaviour. */
export type PlainValue = string | number | boolean | null | readonly PlainValue[] | { readonly [key: string]: PlainValue };
export type PlainView = { readonly [key: string]: PlainValue };

export interface RenderedEmail {
  subject: string;
  text: string;
  html: string;
}

/** A template file is malformed, missing, or was rendered with a view that does not fit it. Names no view values. */
export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TemplateError";
  }
}

const PARTS = ["subject", "text", "html"] as const;
type Part = (typeof PARTS)[number];
const PART_LINE = /^--- (subject|text|html) ---$/;
const FILE_NAME = /^([a-z0-9][a-z0-9-]*)\.([a-z]{2})\.mustache$/;

/** Mustache's token tuple: [type, value, start, end, children?, ...]. */
export type Token = [string, string, number, number, Token[]?, ...unknown[]];

interface ParsedTemplate {
  readonly source: Record<Part, string>;
  readonly tokens: Record<Part, Token[]>;
}

function parseFile(file: string, content: string): Record<Part, string> {
  const parts: Partial<Record<Part, string[]>> = {};
  let current: string[] | undefined;
  for (const line of content.replace(/\r\n/g, "\n").split("\n")) {
    const m = PART_LINE.exec(line);
    if (m) {
      const part = m[1] as Part;
      if (parts[part]) throw new TemplateError(`${file}: the ${part} part is given twice`);
      current = parts[part] = [];
    } else if (current) {
      current.push(line);
    } else if (line.trim() !== "") {
      throw new TemplateError(`${file}: text before the first '--- subject ---' line`);
    }
  }
  const out = {} as Record<Part, string>;
  for (const part of PARTS) {
    const lines = parts[part];
    if (!lines) throw new TemplateError(`${file}: the ${part} part is missing`);
    out[part] = lines.join("\n").trim() + (part === "subject" ? "" : "\n");
  }
  if (out.subject.includes("\n")) throw new TemplateError(`${file}: the subject must be one line`);
  return out;
}

/** Refuses what would let a template print unescaped data, pull in other files or change its own syntax. */
export function checkTokens(file: string, tokens: Token[]): void {
  for (const t of tokens) {
    const [type, value] = t;
    if (type === "&" || type === "{") throw new TemplateError(`${file}: unescaped output ({{{${value}}}} or {{&${value}}}) is not allowed`);
    if (type === ">") throw new TemplateError(`${file}: partials ({{>${value}}}) are not allowed`);
    if (type === "=") throw new TemplateError(`${file}: changing delimiters is not allowed`);
    if (t[4]) checkTokens(file, t[4]);
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Throws unless `v` is plain data all the way down. */
export function checkPlain(v: unknown, where: string): void {
  if (v === null || typeof v === "string" || typeof v === "boolean") return;
  if (typeof v === "number") {
    if (!Number.isFinite(v)) throw new TemplateError(`view value at ${where} is not a finite number`);
    return;
  }
  if (Array.isArray(v)) {
    v.forEach((item, i) => checkPlain(item, `${where}[${i}]`));
    return;
  }
  if (isPlainObject(v)) {
    for (const [k, child] of Object.entries(v)) checkPlain(child, `${where}.${k}`);
    return;
  }
  throw new TemplateError(`view value at ${where} is not plain data (${typeof v}); views hold strings, numbers, booleans, null, arrays and plain objects only`);
}

/** Mustache's lookup: the name's first segment in the nearest context that has it, then down the dots. */
function lookup(stack: unknown[], name: string): { found: boolean; value: unknown } {
  if (name === ".") return { found: true, value: stack[stack.length - 1] };
  const [head, ...rest] = name.split(".");
  for (let i = stack.length - 1; i >= 0; i--) {
    const ctx = stack[i];
    if (isPlainObject(ctx) && Object.hasOwn(ctx, head!)) {
      let value: unknown = ctx[head!];
      for (const seg of rest) {
        if (!isPlainObject(value) || !Object.hasOwn(value, seg)) return { found: false, value: undefined };
        value = value[seg];
      }
      return { found: true, value };
    }
  }
  return { found: false, value: undefined };
}

/** Every placeholder and section the rendering will visit must be in the view. */
export function checkNames(file: string, tokens: Token[], stack: unknown[]): void {
  for (const t of tokens) {
    const [type, name] = t;
    if (type !== "name" && type !== "#" && type !== "^") continue;
    const { found, value } = lookup(stack, name);
    if (!found) throw new TemplateError(`${file}: the view has no value for {{${name}}}`);
    const children = t[4] ?? [];
    if (type === "^") {
      // Rendered only when the value is empty or false, in the same context.
      if (!value || (Array.isArray(value) && value.length === 0)) checkNames(file, children, stack);
    } else if (type === "#") {
      if (Array.isArray(value)) for (const item of value) checkNames(file, children, [...stack, item]);
      else if (value) checkNames(file, children, typeof value === "object" ? [...stack, value] : stack);
    }
  }
}

const noEscape = (s: string) => s;

/**
 * The view with, for each number `n` in it (at any depth of plain objects), a boolean `nOne` that is true when it is
 * 1, unless the view names `nOne` itself. Logic-less templates choose the singular with it: `{{#daysOne}}1 day{{/daysOne}}
 * {{^daysOne}}{{days}} days{{/daysOne}}`. English and Danish both use the singular for exactly 1 and the plural for
 * every other whole number (CLDR plural rules, categories "one" and "other").
 */
export function withCounts<V extends PlainValue>(view: V): V {
  if (Array.isArray(view)) return view.map((v: PlainValue) => withCounts(v)) as unknown as V;
  if (view === null || typeof view !== "object") return view;
  const out: Record<string, PlainValue> = {};
  for (const [k, v] of Object.entries(view as { readonly [key: string]: PlainValue })) {
    out[k] = withCounts(v);
    if (typeof v === "number" && !(`${k}One` in (view as object))) out[`${k}One`] = v === 1;
  }
  return out as V;
}

/**
 * Reads every `<name>.<language>.mustache` in `dir` (sorted), parses each with `parse(fileName, text)` and returns
 * them keyed `<name>.<language>`. Throws TemplateError for a language not in LANGUAGES or for a name missing in one
 * of them (every `kind` exists in every language); what `parse` throws is thrown as it is.
 */
export function loadLanguageFiles<T>(dir: string, kind: string, parse: (entry: string, text: string) => T): Map<string, T> {
  const loaded = new Map<string, T>();
  const names = new Set<string>();
  for (const entry of readdirSync(dir).sort()) {
    const m = FILE_NAME.exec(entry);
    if (!m) continue;
    const [, name, language] = m;
    if (!(LANGUAGES as readonly string[]).includes(language!)) throw new TemplateError(`${entry}: ${language} is not one of the languages ${LANGUAGES.join(", ")}`);
    loaded.set(`${name}.${language}`, parse(entry, readFileSync(path.join(dir, entry), "utf8")));
    names.add(name!);
  }
  for (const name of names) {
    for (const language of LANGUAGES) {
      if (!loaded.has(`${name}.${language}`)) throw new TemplateError(`${name}.${language}.mustache is missing: every ${kind} exists in every language`);
    }
  }
  return loaded;
}

/** The loaded templates: every file parsed and checked once, at start. */
export class EmailTemplates {
  private readonly templates: Map<string, ParsedTemplate>;

  /** Loads every `<name>.<language>.mustache` in `dir`. Throws TemplateError for a malformed file or a missing language. */
  constructor(readonly dir: string) {
    this.templates = loadLanguageFiles(dir, "template", (entry, text) => {
      const source = parseFile(entry, text);
      const tokens = {} as Record<Part, Token[]>;
      for (const part of PARTS) {
        tokens[part] = Mustache.parse(source[part]) as unknown as Token[];
        checkTokens(`${entry} (${part})`, tokens[part]);
      }
      return { source, tokens };
    });
  }

  /** The template names available (each in every language). */
  names(): string[] {
    return [...new Set([...this.templates.keys()].map((k) => k.slice(0, k.lastIndexOf("."))))].sort();
  }

  /**
   * Renders a message. Throws TemplateError for an unknown template, a view that is not plain data, a placeholder the
   * view does not provide, or a subject that would not be one line. Numbers in the view also give `<name>One`
   * (withCounts), for the singular.
   */
  render(name: string, language: Language, given: PlainView): RenderedEmail {
    const file = `${name}.${language}.mustache`;
    const template = this.templates.get(`${name}.${language}`);
    if (!template) throw new TemplateError(`no template ${file}`);
    checkPlain(given, "view");
    const view = withCounts(given);
    for (const part of PARTS) checkNames(`${file} (${part})`, template.tokens[part], [view]);
    const subject = Mustache.render(template.source.subject, view, {}, { escape: noEscape }).trim();
    if (/[\r\n]/.test(subject)) throw new TemplateError(`${file}: the subject rendered to more than one line`);
    return {
      subject,
      text: Mustache.render(template.source.text, view, {}, { escape: noEscape }),
      html: Mustache.render(template.source.html, view),
    };
  }
}

/**
 * The templates shipped with the service: `templates/email/` at the package root (the folder that holds
 * package.json, in the repository and in the deployed package alike).
 */
export function bundledTemplatesDir(from: string = __dirname): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    try {
      readFileSync(path.join(dir, "package.json"));
      return path.join(dir, "templates", "email");
    } catch {
      if (path.dirname(dir) === dir) throw new TemplateError(`no package.json above ${from}: cannot find templates/email`);
    }
  }
}
