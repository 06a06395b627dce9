/**
 * fast-check arbitraries built from the JSON Schemas of an OpenAPI document: `validValue` makes values the schema
 * accepts (as far as a schema can say: an e-mail address or a time may still be refused by a rule the schema does not
 * show), `wrongValue` values it refuses (a wrong type, a bound crossed, a pattern missed, a required field dropped, an
 * unknown one added). Sizes are kept small: the values go over HTTP.
 */
import fc from "fast-check";
import type { JsonSchema } from "./openapi-contract";

export interface SchemaContext {
  /** Resolves a `$ref` (`#/components/schemas/<name>`). */
  resolve(ref: string): JsonSchema;
}

const MAX_STRING = 40;

function deref(schema: JsonSchema, ctx: SchemaContext): JsonSchema {
  let s = schema;
  for (let i = 0; s.$ref && i < 10; i++) s = { ...ctx.resolve(s.$ref), ...Object.fromEntries(Object.entries(s).filter(([k]) => k !== "$ref")) };
  return s;
}

function typesOf(s: JsonSchema): string[] {
  if (Array.isArray(s.type)) return s.type;
  if (s.type) return [s.type];
  if (s.properties) return ["object"];
  if (s.items) return ["array"];
  return [];
}

const lengthOk = (s: JsonSchema) => (v: string) => v.length >= (s.minLength ?? 0) && v.length <= (s.maxLength ?? Infinity);

/** Addresses zod's z.email() takes: plain local parts and domains. */
const email = fc
  .tuple(fc.stringMatching(/^[a-z0-9]([a-z0-9._-]{0,15}[a-z0-9])?$/), fc.constantFrom("example.com", "recipient.example", "mail.example.org"))
  .filter(([local]) => !local.includes(".."))
  .map(([local, domain]) => `${local}@${domain}`);

function validString(s: JsonSchema): fc.Arbitrary<string> {
  const fromExamples = (s.examples ?? []).filter((e): e is string => typeof e === "string");
  let base: fc.Arbitrary<string>;
  switch (s.format) {
    case "email":
      base = fc.oneof({ weight: 9, arbitrary: email }, { weight: 1, arbitrary: fc.emailAddress() });
      break;
    case "uri":
      base = fc.oneof(
        fc.constantFrom("https://hooks.example.com/safedata", "https://receiver.example.org/in?x=1"),
        fc.webUrl({ validSchemes: ["https"] }),
      );
      break;
    case "date-time":
      base = fc.date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true }).map((d) => d.toISOString());
      break;
    case "uuid":
      base = fc.uuid();
      break;
    default:
      base = s.pattern
        ? fc.stringMatching(new RegExp(s.pattern))
        : fc.string({ minLength: Math.max(1, s.minLength ?? 0), maxLength: Math.max(s.minLength ?? 0, Math.min(s.maxLength ?? MAX_STRING, MAX_STRING)) });
  }
  const generated = base.filter(lengthOk(s));
  return fromExamples.length > 0 ? fc.oneof(fc.constantFrom(...fromExamples), generated) : generated;
}

function validNumber(s: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const min = s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : integer ? -1000 : -1e6);
  const max = s.maximum ?? (s.exclusiveMaximum !== undefined ? s.exclusiveMaximum - 1 : min + 1_000_000);
  if (!integer) return fc.double({ min, max, noNaN: true });
  // Mostly near the lower bound (sizes, counts, limits), sometimes anywhere in range.
  return fc.oneof({ weight: 3, arbitrary: fc.integer({ min, max: Math.min(max, min + 100) }) }, { weight: 1, arbitrary: fc.integer({ min, max: Math.min(max, Number.MAX_SAFE_INTEGER) }) });
}

/** Values `schema` accepts. */
export function validValue(schema: JsonSchema, ctx: SchemaContext, depth = 0): fc.Arbitrary<unknown> {
  const s = deref(schema, ctx);
  if (s.const !== undefined) return fc.constant(s.const);
  if (s.enum) return fc.constantFrom(...s.enum);
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((a) => validValue(a, ctx, depth + 1)));
  if (s.allOf) return validValue(Object.assign({}, ...s.allOf.map((a) => deref(a, ctx)), { allOf: undefined }), ctx, depth + 1);
  const types = typesOf(s);
  if (types.length === 0) return fc.jsonValue({ maxDepth: 2 });
  return fc.oneof(
    ...types.map((t): fc.Arbitrary<unknown> => {
      switch (t) {
        case "string":
          return validString(s);
        case "integer":
          return validNumber(s, true);
        case "number":
          return validNumber(s, false);
        case "boolean":
          return fc.boolean();
        case "null":
          return fc.constant(null);
        case "array": {
          const min = s.minItems ?? 0;
          const max = Math.min(s.maxItems ?? min + 3, min + 3);
          const item = validValue(s.items ?? {}, ctx, depth + 1);
          return s.uniqueItems
            ? fc.uniqueArray(item, { minLength: min, maxLength: max, selector: (v) => JSON.stringify(v) })
            : fc.array(item, { minLength: min, maxLength: max });
        }
        case "object": {
          const props = s.properties ?? {};
          const shape = Object.fromEntries(Object.entries(props).map(([k, p]) => [k, validValue(p, ctx, depth + 1)]));
          const record = fc.record(shape, { requiredKeys: (s.required ?? []).filter((k) => k in props) }) as fc.Arbitrary<Record<string, unknown>>;
          if (s.additionalProperties && typeof s.additionalProperties === "object" && Object.keys(props).length === 0 && depth < 3) {
            return fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }), validValue(s.additionalProperties, ctx, depth + 1), { maxKeys: 3 });
          }
          return record;
        }
        default:
          return fc.jsonValue({ maxDepth: 1 });
      }
    }),
  );
}

/** A JSON value of none of `types`. */
function otherType(types: string[]): fc.Arbitrary<unknown> {
  const all: Array<[string, fc.Arbitrary<unknown>]> = [
    ["string", fc.string({ maxLength: 10 })],
    ["integer", fc.integer()],
    ["number", fc.double({ noNaN: true, noDefaultInfinity: true }).filter((n) => !Number.isInteger(n))],
    ["boolean", fc.boolean()],
    ["null", fc.constant(null)],
    ["array", fc.array(fc.integer(), { maxLength: 2 })],
    ["object", fc.constant({ unexpected: true })],
  ];
  const others = all.filter(([t]) => !types.includes(t) && !(t === "integer" && types.includes("number")));
  return fc.oneof(...others.map(([, a]) => a));
}

/** Values `schema` refuses (when it refuses anything: an unconstrained schema gets some wrong-typed value anyway). */
export function wrongValue(schema: JsonSchema, ctx: SchemaContext, depth = 0): fc.Arbitrary<unknown> {
  const s = deref(schema, ctx);
  if (s.enum) return fc.oneof(fc.string({ maxLength: 12 }).filter((v) => !s.enum!.includes(v)), otherType(["string"]));
  if (s.anyOf ?? s.oneOf) return otherType([...new Set((s.anyOf ?? s.oneOf)!.flatMap((a) => typesOf(deref(a, ctx))))]);
  const types = typesOf(s);
  if (types.length === 0) return fc.constant(undefined);
  const wrongs: Array<fc.Arbitrary<unknown>> = [otherType(types)];
  if (types.includes("string")) {
    if (s.maxLength !== undefined && s.maxLength < 5000) wrongs.push(fc.constant("x".repeat(s.maxLength + 1)));
    if ((s.minLength ?? 0) > 0) wrongs.push(fc.constant(""));
    if (s.pattern) {
      const p = new RegExp(s.pattern);
      wrongs.push(fc.string({ maxLength: 20 }).filter((v) => !p.test(v)));
    }
    if (s.format === "email") wrongs.push(fc.constantFrom("not-an-address", "a@", "@b.example", "a b@c.example"));
    if (s.format === "date-time") wrongs.push(fc.constantFrom("2026-13-45T00:00:00Z", "yesterday", "2026-01-01"));
    if (s.format === "uri") wrongs.push(fc.constantFrom("http://insecure.example/x", "https://127.0.0.1/x", "ftp://x.example", "https://user:pw@x.example/"));
  }
  if (types.includes("integer") || types.includes("number")) {
    if (s.minimum !== undefined) wrongs.push(fc.constant(s.minimum - 1));
    if (s.maximum !== undefined) wrongs.push(fc.constant(s.maximum + 1));
    if (types.includes("integer")) wrongs.push(fc.constant(1.5));
  }
  if (types.includes("array")) {
    if ((s.minItems ?? 0) > 0) wrongs.push(fc.constant([]));
    if (s.maxItems !== undefined && s.maxItems <= 50 && s.items) wrongs.push(fc.array(validValue(s.items, ctx, depth + 1), { minLength: s.maxItems + 1, maxLength: s.maxItems + 1 }));
    if (s.items && depth < 3) wrongs.push(wrongValue(s.items, ctx, depth + 1).map((v) => [v]));
  }
  if (types.includes("object") && s.properties && depth < 3) {
    const props = s.properties;
    // An object of the schema (a nullable object's type also names "null", which has no fields to take away or change).
    const valid = validValue({ ...s, type: "object" }, ctx, depth + 1) as fc.Arbitrary<Record<string, unknown>>;
    const required = (s.required ?? []).filter((k) => k in props);
    if (required.length > 0) {
      wrongs.push(fc.tuple(valid, fc.constantFrom(...required)).map(([v, k]) => Object.fromEntries(Object.entries(v).filter(([key]) => key !== k))));
    }
    if (s.additionalProperties === false) wrongs.push(valid.map((v) => ({ ...v, unexpectedField: 1 })));
    const names = Object.keys(props);
    if (names.length > 0) {
      wrongs.push(
        fc
          .constantFrom(...names)
          .chain((k) => fc.tuple(valid, fc.constant(k), wrongValue(props[k]!, ctx, depth + 1)))
          .filter(([, , w]) => w !== undefined)
          .map(([v, k, w]) => ({ ...v, [k]: w })),
      );
    }
  }
  return fc.oneof(...wrongs);
}
