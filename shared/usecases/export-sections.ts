/**
 * The registry of what goes into an access or portability package: each kind of data the service keeps about a
 * person registers a section (uploads, consent records, earlier requests; breach notices sent to the person, ...).
 * data.json holds one array per section under `sections.<name>`, index.html one block per section, and its JSON
 * Schema (shared/domain/subject-package.ts) is built from the sections' item schemas, so a new section is described
 * where it is defined.
 *
 * A section's `items` is called once per part of the package it feeds (data.json, index.html), reads the stores
 * itself a page at a time and yields one item at a time, so nothing is held whole in memory whatever the count. It
 * reads only the tenant's partition (`ctx.tenantId`) and finds the person by the keyed hash (`ctx.subjectHash`). It
 * must yield the same items, in the same order, each time it is called for one build. Decrypting reads are audited
 * once for the whole package by the caller (`subject-request.package-built` names the sections and counts).
 */
import type { Readable } from "node:stream";
import type { Language } from "../domain/language";
import type { JsonSchema, PackageScope, SectionSchema } from "../domain/subject-package";
import type { Services } from "../services";

/** What a section is asked for. */
export interface ExportContext {
  readonly tenantId: string;
  readonly requestId: string;
  /** The keyed hash of the person's normalised address (per-tenant lookup secret). */
  readonly subjectHash: string;
  readonly scope: PackageScope;
  readonly language: Language;
  readonly timeZone: string;
  /** Upload ids whose content the tenant decided to include although it names other people too (Art. 15(4)). */
  readonly includedContent: ReadonlySet<string>;
}

/** A file the package carries under `files/` (Art. 15(3): a copy of the data). */
export interface ExportFile {
  /** The path inside the zip (`files/...`), unique within the package. */
  readonly path: string;
  /** Its size in bytes (checked while it is written). */
  readonly size: number;
  /** The plaintext, when its turn comes to be written (opened lazily: one at a time). */
  open(): Promise<Readable>;
}

/** A plain JSON value. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** One item of a section. */
export interface ExportItem {
  /** The item in data.json (must match the section's `itemSchema`). */
  readonly data: { [key: string]: JsonValue };
  /** Its rows in index.html: label and value, already in the package's language (values are escaped when rendered). */
  readonly rows: ReadonlyArray<{ label: string; value: string }>;
  /** Its content, when the package carries a copy. */
  readonly file?: ExportFile;
}

export interface ExportSection {
  /** The key under `sections` in data.json (camelCase). */
  readonly name: string;
  /** What the section holds, for the JSON Schema. */
  readonly description: string;
  /** Its heading in index.html, per language. */
  readonly title: Readonly<Record<Language, string>>;
  /** The packages it appears in: access always; portability only for what the person provided (Art. 20(1)). */
  readonly scopes: readonly PackageScope[];
  /** The JSON Schema of one item of `data` (closed objects: `additionalProperties: false`). */
  readonly itemSchema: JsonSchema;
  /** The person's items for this tenant, one at a time (see the module comment). */
  items(s: Services, ctx: ExportContext): AsyncIterable<ExportItem>;
}

const sections = new Map<string, ExportSection>();

/** Adds a section (once per name; registering a name again replaces it). Order of registration is order in the package. */
export function registerExportSection(section: ExportSection): void {
  if (!/^[a-z][A-Za-z0-9]{0,59}$/.test(section.name)) throw new Error(`an export section's name must be camelCase: ${section.name}`);
  sections.set(section.name, section);
}

/** The sections of a package of this scope, in order. */
export function exportSections(scope?: PackageScope): ExportSection[] {
  return [...sections.values()].filter((sec) => scope === undefined || sec.scopes.includes(scope));
}

/** The schemas of every section (data.json's schema lists them all; a portability package leaves some empty). */
export function sectionSchemas(): SectionSchema[] {
  return [...sections.values()].map((sec) => ({ name: sec.name, description: sec.description, item: sec.itemSchema }));
}
