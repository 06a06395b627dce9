/**
 * Telemetry on every Node version the project supports (package.json engines: Node 20 and 22). The Application
 * Insights SDK's dependency tree is pinned (package.json `overrides`, README "Libraries") to versions whose `engines`
 * include Node 20; this proves, on the Node running the tests, that
 * - every package the deployed app depends on (dependencies, not devDependencies, transitively) accepts this Node;
 * - shared/observability.ts loads the SDK and an event reaches an ingestion endpoint (a local fake here).
 * The SDK patches Node's core modules for the whole process, so it runs in a child process, not in Jest's worker.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { gunzipSync } from "node:zlib";
import { describe, it } from "@jest/globals";
import { selfSignedCertificate } from "../fakes/acs-email-fake";
import { serveFake } from "../fakes/serve";
import { expect } from "../helpers/expect";

// npm's own range arithmetic (semver, in every npm tree), for `engines`.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const semver = require("semver") as { validRange(range: string): string | null; satisfies(version: string, range: string): boolean };

const ROOT = path.join(__dirname, "../..");

interface Manifest {
  name: string;
  version: string;
  engines?: { node?: string };
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** The directory of package `name` as Node would find it from `from` (the nearest node_modules up the tree). */
function packageDir(name: string, from: string): string | undefined {
  for (let dir = from; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules", name);
    if (existsSync(path.join(candidate, "package.json"))) return candidate;
    if (dir === ROOT || path.dirname(dir) === dir) return undefined;
  }
}

describe("on the running Node", () => {
  it("every package of the deployed app's dependency tree accepts this Node version (engines)", () => {
    const root = JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as Manifest;
    const seen = new Set<string>();
    const refused: string[] = [];
    const queue: Array<{ name: string; from: string }> = Object.keys(root.dependencies ?? {}).map((name) => ({ name, from: ROOT }));
    while (queue.length > 0) {
      const { name, from } = queue.pop()!;
      const dir = packageDir(name, from);
      if (!dir || seen.has(dir)) continue;
      seen.add(dir);
      const m = JSON.parse(readFileSync(path.join(dir, "package.json"), "utf8")) as Manifest;
      const range = m.engines?.node;
      if (range && semver.validRange(range) && !semver.satisfies(process.version, range)) refused.push(`${m.name}@${m.version} needs Node ${range}`);
      for (const dep of Object.keys({ ...m.dependencies, ...m.optionalDependencies })) queue.push({ name: dep, from: dir });
    }
    expect(seen.size).toBeGreaterThan(50);
    expect(refused, `packages that refuse Node ${process.version}`).toEqual([]);
  });

  it("telemetry loads and an event reaches the ingestion endpoint", async () => {
    const bodies: string[] = [];
    // The exporter always speaks HTTPS to its ingestion endpoint: a fake one with a certificate the child trusts.
    const tls = selfSignedCertificate();
    const caFile = path.join(mkdtempSync(path.join(os.tmpdir(), "safedata-telemetry-")), "ca.pem");
    writeFileSync(caFile, tls.cert);
    const ingestion = await serveFake(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const raw = Buffer.concat(chunks);
      bodies.push((req.headers["content-encoding"] === "gzip" ? gunzipSync(raw) : raw).toString("utf8"));
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ itemsReceived: 1, itemsAccepted: 1, errors: [] }));
    }, tls);
    const port = new URL(ingestion.url).port;
    // A child process loads shared/observability.ts (compiled with SWC, as Jest does) and sends one event.
    const script = `
      const fs = require("node:fs");
      const swc = require("@swc/core");
      require.extensions[".ts"] = (m, filename) => {
        const { code } = swc.transformSync(fs.readFileSync(filename, "utf8"), {
          filename, jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "commonjs" },
        });
        m._compile(code, filename);
      };
      const { createTelemetry } = require(${JSON.stringify(path.join(ROOT, "shared/observability.ts"))});
      const t = createTelemetry({ connectionString: "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:${port}/" });
      t.event("node-check", { node: process.version });
      // The exporter may send after flush resolves: the process stays until the test has seen the event arrive (it
      // closes stdin then), not for a fixed moment that a busy machine's TLS handshake can outlast.
      t.flush().then(() => { process.stdin.on("end", () => process.exit(0)); process.stdin.resume(); }, (e) => { console.error(e); process.exit(1); });
    `;
    const child = spawn(process.execPath, ["-e", script], { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, APPLICATIONINSIGHTS_CONNECTION_STRING: "", NODE_EXTRA_CA_CERTS: caFile } });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    let childGone = false;
    const exited = new Promise<number | null>((r) =>
      child.once("exit", (c) => {
        childGone = true;
        r(c);
      }),
    );
    const until = Date.now() + 40_000;
    while (!childGone && !bodies.some((b) => b.includes("node-check")) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    child.stdin.end();
    const code = await exited;
    await ingestion.stop();
    expect(code, stderr).toBe(0);
    expect(bodies.some((b) => b.includes("node-check")), `what reached the endpoint: ${bodies.join("\n").slice(0, 500)}`).toBe(true);
  }, 60_000);
});
