/** The service's version from package.json, found from this file whether it runs from source or from dist/. */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

let cached: string | undefined;

export function serviceVersion(): string {
  if (cached) return cached;
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, "package.json");
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "safedata" && pkg.version) return (cached = pkg.version);
    }
    dir = path.dirname(dir);
  }
  return (cached = "0.0.0");
}
