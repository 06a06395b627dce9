/**
 * The ARM template expression language, as far as the compiled template (infra/compiled/main.json) uses it: a
 * parser and an evaluator over a table of functions that the caller supplies. A JSON string value is an
 * expression when it is wrapped in `[...]` (and `[[` escapes a literal `[`).
 *
 * Grammar: string literals ('it''s'), integers, function calls `name(arg, ...)`, property access `.name` and
 * indexing `[expr]`. A function the table does not have, or a property a value does not have, throws with the
 * expression: a test never gets a guess.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export type Expr =
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "number"; readonly value: number }
  | { readonly kind: "call"; readonly name: string; readonly args: readonly Expr[] }
  | { readonly kind: "property"; readonly target: Expr; readonly name: string }
  | { readonly kind: "index"; readonly target: Expr; readonly index: Expr };

export class ArmExpressionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArmExpressionError";
  }
}

export const isObject = (v: Json | undefined): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);

/** True for a JSON string that ARM evaluates as an expression. */
export const isExpression = (s: string): boolean => s.startsWith("[") && s.endsWith("]") && !s.startsWith("[[");

type Token = { kind: "ident" | "string" | "number" | "punct"; text: string; at: number };

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "'") {
      let j = i + 1;
      let text = "";
      for (;;) {
        if (j >= src.length) throw new ArmExpressionError(`unterminated string in [${src}]`);
        if (src[j] === "'") {
          if (src[j + 1] === "'") {
            text += "'";
            j += 2;
            continue;
          }
          break;
        }
        text += src[j];
        j++;
      }
      tokens.push({ kind: "string", text, at: i });
      i = j + 1;
    } else if (/[-\d]/.test(c)) {
      const m = /^-?\d+/.exec(src.slice(i));
      if (!m) throw new ArmExpressionError(`unexpected '${c}' at ${i} in [${src}]`);
      tokens.push({ kind: "number", text: m[0], at: i });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_]\w*/.exec(src.slice(i))!;
      tokens.push({ kind: "ident", text: m[0], at: i });
      i += m[0].length;
    } else if ("(),.[]".includes(c)) {
      tokens.push({ kind: "punct", text: c, at: i });
      i++;
    } else {
      throw new ArmExpressionError(`unexpected '${c}' at ${i} in [${src}]`);
    }
  }
  return tokens;
}

/** Parses the text of an expression, without its surrounding brackets. */
export function parseExpression(src: string): Expr {
  const tokens = tokenize(src);
  let pos = 0;
  const peek = (): Token | undefined => tokens[pos];
  const expect = (text: string): void => {
    const t = tokens[pos];
    if (t?.text !== text || t.kind !== "punct") throw new ArmExpressionError(`expected '${text}' at ${t?.at ?? src.length} in [${src}]`);
    pos++;
  };

  const primary = (): Expr => {
    const t = tokens[pos++];
    if (!t) throw new ArmExpressionError(`unexpected end of [${src}]`);
    if (t.kind === "string") return { kind: "string", value: t.text };
    if (t.kind === "number") return { kind: "number", value: Number(t.text) };
    if (t.kind === "ident") {
      expect("(");
      const args: Expr[] = [];
      if (peek()?.text !== ")") {
        for (;;) {
          args.push(expression());
          if (peek()?.text === ",") {
            pos++;
            continue;
          }
          break;
        }
      }
      expect(")");
      return { kind: "call", name: t.text, args };
    }
    throw new ArmExpressionError(`unexpected '${t.text}' at ${t.at} in [${src}]`);
  };

  const expression = (): Expr => {
    let e = primary();
    for (;;) {
      const t = peek();
      if (t?.kind === "punct" && t.text === ".") {
        pos++;
        const name = tokens[pos++];
        if (name?.kind !== "ident") throw new ArmExpressionError(`expected a property name after '.' in [${src}]`);
        e = { kind: "property", target: e, name: name.text };
      } else if (t?.kind === "punct" && t.text === "[") {
        pos++;
        const index = expression();
        expect("]");
        e = { kind: "index", target: e, index };
      } else {
        return e;
      }
    }
  };

  const e = expression();
  if (pos !== tokens.length) throw new ArmExpressionError(`unexpected '${tokens[pos]!.text}' at ${tokens[pos]!.at} in [${src}]`);
  return e;
}

/** Source text of an expression, for messages. */
export function showExpr(e: Expr): string {
  switch (e.kind) {
    case "string":
      return `'${e.value.replace(/'/g, "''")}'`;
    case "number":
      return String(e.value);
    case "call":
      return `${e.name}(${e.args.map(showExpr).join(", ")})`;
    case "property":
      return `${showExpr(e.target)}.${e.name}`;
    case "index":
      return `${showExpr(e.target)}[${showExpr(e.index)}]`;
  }
}

/**
 * A function of the expression language. It gets its arguments unevaluated, with the evaluator, so `if`, `and`, `or`
 * and `coalesce` can leave an untaken branch alone (as ARM does); `eager` wraps a function of the argument values.
 */
export type ArmFunction = (args: readonly Expr[], evaluate: (e: Expr) => Json) => Json;

export const eager =
  (fn: (values: Json[]) => Json): ArmFunction =>
  (args, evaluate) =>
    fn(args.map(evaluate));

/** Evaluates a parsed expression with the given functions (keys lower-case: ARM's names are case-insensitive). */
export function evaluateExpr(e: Expr, functions: ReadonlyMap<string, ArmFunction>): Json {
  const evaluate = (x: Expr): Json => evaluateExpr(x, functions);
  switch (e.kind) {
    case "string":
    case "number":
      return e.value;
    case "call": {
      const fn = functions.get(e.name.toLowerCase());
      if (!fn) throw new ArmExpressionError(`function ${e.name}() is not modelled by tests/infra (in ${showExpr(e)})`);
      return fn(e.args, evaluate);
    }
    case "property": {
      const target = evaluate(e.target);
      const key = isObject(target) ? Object.keys(target).find((k) => k.toLowerCase() === e.name.toLowerCase()) : undefined;
      if (key === undefined || !isObject(target)) throw new ArmExpressionError(`no property '${e.name}' in ${showExpr(e)} (value: ${JSON.stringify(target)?.slice(0, 200)})`);
      return target[key]!;
    }
    case "index": {
      const target = evaluate(e.target);
      const index = evaluate(e.index);
      if (Array.isArray(target) && typeof index === "number") {
        if (index < 0 || index >= target.length) throw new ArmExpressionError(`index ${index} out of range in ${showExpr(e)}`);
        return target[index]!;
      }
      if (isObject(target) && typeof index === "string") {
        const key = Object.keys(target).find((k) => k.toLowerCase() === index.toLowerCase());
        if (key === undefined) throw new ArmExpressionError(`no property '${index}' in ${showExpr(e)}`);
        return target[key]!;
      }
      throw new ArmExpressionError(`cannot index ${JSON.stringify(target)} with ${JSON.stringify(index)} in ${showExpr(e)}`);
    }
  }
}
