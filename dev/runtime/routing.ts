/**
 * Route templates as the Functions host understands them (ASP.NET Core style): literal segments, `{name}`,
 * optional `{name?}`, constrained `{name:int}` / `{name:alpha}` / `{name:guid}` / `{name:regex(...)}`,
 * and a trailing catch-all `{*name}`. Matching picks the most specific template: literal segments beat
 * parameters, parameters beat the catch-all, as the host does.
 */

type Segment =
  | { kind: "literal"; text: string }
  | { kind: "param"; name: string; optional: boolean; constraint?: (v: string) => boolean }
  | { kind: "catchAll"; name: string };

export interface CompiledRoute {
  readonly template: string;
  readonly segments: readonly Segment[];
}

const CONSTRAINTS: Record<string, (v: string) => boolean> = {
  int: (v) => /^-?\d+$/.test(v),
  long: (v) => /^-?\d+$/.test(v),
  alpha: (v) => /^[A-Za-z]+$/.test(v),
  bool: (v) => /^(true|false)$/i.test(v),
  guid: (v) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v),
};

function constraintFor(spec: string, template: string): (v: string) => boolean {
  const regex = /^regex\((.*)\)$/.exec(spec);
  if (regex) {
    const re = new RegExp(regex[1]!);
    return (v) => re.test(v);
  }
  const known = CONSTRAINTS[spec];
  if (!known) throw new Error(`route ${template}: unsupported constraint '${spec}'`);
  return known;
}

export function compileRoute(template: string): CompiledRoute {
  const trimmed = template.replace(/^\/+|\/+$/g, "");
  const parts = trimmed === "" ? [] : trimmed.split("/");
  const segments: Segment[] = parts.map((part, i) => {
    const m = /^\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(\?)?(?::(.+))?\}$/.exec(part);
    if (!m) {
      if (/[{}]/.test(part)) throw new Error(`route ${template}: cannot parse segment '${part}'`);
      return { kind: "literal", text: part.toLowerCase() };
    }
    const [, star, name, optional, constraint] = m;
    if (star) {
      if (i !== parts.length - 1) throw new Error(`route ${template}: a catch-all must be the last segment`);
      return { kind: "catchAll", name: name! };
    }
    return { kind: "param", name: name!, optional: optional === "?", constraint: constraint ? constraintFor(constraint, template) : undefined };
  });
  return { template, segments };
}

export interface RouteMatch {
  params: Record<string, string>;
  /** Higher is more specific. */
  score: number[];
}

/** Matches a decoded path (without the route prefix) against a compiled route. */
export function matchRoute(route: CompiledRoute, path: string): RouteMatch | undefined {
  const trimmed = path.replace(/^\/+|\/+$/g, "");
  const parts = trimmed === "" ? [] : trimmed.split("/");
  const params: Record<string, string> = {};
  const score: number[] = [];
  let i = 0;
  for (const seg of route.segments) {
    if (seg.kind === "catchAll") {
      params[seg.name] = parts.slice(i).join("/");
      score.push(0);
      i = parts.length;
      break;
    }
    const part = parts[i];
    if (part === undefined) {
      if (seg.kind === "param" && seg.optional) {
        score.push(1);
        continue;
      }
      return undefined;
    }
    if (seg.kind === "literal") {
      if (part.toLowerCase() !== seg.text) return undefined;
      score.push(3);
    } else {
      if (part === "" || (seg.constraint && !seg.constraint(part))) return undefined;
      params[seg.name] = part;
      score.push(seg.constraint ? 2.5 : 2);
    }
    i++;
  }
  if (i !== parts.length) return undefined;
  return { params, score };
}

function compareScores(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? -1) - (b[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/** The most specific of several matching routes. */
export function bestMatch<T extends { route: CompiledRoute }>(candidates: readonly T[], path: string): { entry: T; params: Record<string, string> } | undefined {
  let best: { entry: T; match: RouteMatch } | undefined;
  for (const entry of candidates) {
    const match = matchRoute(entry.route, path);
    if (match && (!best || compareScores(match.score, best.match.score) > 0)) best = { entry, match };
  }
  return best ? { entry: best.entry, params: best.match.params } : undefined;
}
