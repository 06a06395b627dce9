#!/usr/bin/env node
// azd "prepackage" hook for the api service: stages exactly what the function app runs into
// .azure/package/api (azure.yaml points the service's `dist` there):
//
//   host.json, package.json, package-lock.json   the Functions host and npm metadata
//   dist/functions, dist/shared                  the compiled code ("main" is dist/functions/index.js)
//   templates                                    the e-mail templates (read at run time from the package root)
//   node_modules                                 production dependencies only (npm ci --omit=dev)
//   .funcignore                                  ignores nothing the app needs, node_modules included
//
// The working tree's own node_modules (with the dev tools) is left alone. Usage: node infra/scripts/stage-api-package.mjs
import console from "node:console";
import process from "node:process";
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const out = join(root, ".azure", "package", "api");
// Compiled folders the deployed app needs; dev/ (local runtime) and bench/ are not deployed.
const compiledFolders = ["functions", "shared"];
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

function run(args, cwd) {
  console.log(`> npm ${args.join(" ")}   (in ${cwd})`);
  execFileSync(npm, args, { cwd, stdio: "inherit", shell: process.platform === "win32" });
}

if (!existsSync(join(root, "node_modules"))) run(["ci", "--no-audit", "--no-fund"], root);
run(["run", "build"], root);

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

for (const file of ["host.json", "package.json", "package-lock.json"]) cpSync(join(root, file), join(out, file));
// Files the app reads at run time, relative to the package root (shared/email/templates.ts bundledTemplatesDir).
const runtimeFolders = ["templates"];
for (const folder of runtimeFolders) cpSync(join(root, folder), join(out, folder), { recursive: true });
for (const folder of compiledFolders) {
  const from = join(root, "dist", folder);
  if (!existsSync(from)) throw new Error(`missing compiled output ${from}: did "npm run build" change its outDir?`);
  cpSync(from, join(out, "dist", folder), { recursive: true });
}

const main = JSON.parse(readFileSync(join(out, "package.json"), "utf8")).main;
if (typeof main !== "string" || !existsSync(join(out, main))) {
  throw new Error(`package.json "main" (${String(main)}) is not in the staged package; add its folder to compiledFolders`);
}

run(["ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund"], out);

writeFileSync(
  join(out, ".funcignore"),
  "# Staged by infra/scripts/stage-api-package.mjs: everything here is deployed, node_modules included.\n" +
    "local.settings.json\n",
);
console.log(`staged the api package in ${out}`);
