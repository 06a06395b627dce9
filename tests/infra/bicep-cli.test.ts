/**
 * The Bicep compiler and linter, for real: with the pinned CLI (scripts/install-bicep.sh), infra/main.bicep must
 * compile and every Bicep file must lint with no error and no warning, and the compiled template the other infra
 * tests read (infra/compiled/main.json) must be exactly what the compiler makes of the Bicep today.
 *
 * Without the CLI these checks are skipped with one line, except under CI (CI set), where a missing CLI fails.
 * The checks that need no compiler run everywhere: the compiled template was built from the Bicep as it is now
 * (infra/compiled/sources.sha256), and every silenced diagnostic says why.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { COMPILED, REPO, readRepoFile } from "./compiled";

const run = promisify(execFile);

const version = /^BICEP_VERSION="([^"]+)"$/m.exec(readRepoFile("scripts/install-bicep.sh"))?.[1];
if (!version) throw new Error("scripts/install-bicep.sh has no BICEP_VERSION=\"...\" line");
const cli = join(REPO, ".tools", "bicep", version, "bicep");
const present = existsSync(cli);
const inCI = !!process.env.CI;
const INSTALL = "bash scripts/install-bicep.sh";
const REBUILD = "bash scripts/build-infra.sh";

/** The files the compiled template depends on, as scripts/build-infra.sh lists them (sorted, repository paths). */
function sourceFiles(): string[] {
  const bicep = readdirSync(join(REPO, "infra"), { recursive: true })
    .map((p) => `infra/${String(p)}`)
    .filter((p) => p.endsWith(".bicep"));
  return [...bicep, "bicepconfig.json"].sort();
}

const sha256 = (path: string): string => createHash("sha256").update(readRepoFile(path)).digest("hex");

describe("compiled template is current", () => {
  it(`was built from the Bicep as it is now (${COMPILED}; rebuild with ${REBUILD})`, () => {
    const recorded = readRepoFile("infra/compiled/sources.sha256");
    const now = sourceFiles()
      .map((p) => `${sha256(p)}  ${p}\n`)
      .join("");
    expect(now, `infra/ changed after ${COMPILED} was built: run ${REBUILD} and commit both files`).toBe(recorded);
  });

  it("silences a compiler diagnostic only beside the line, with a reason", () => {
    const bare = sourceFiles()
      .filter((p) => p.endsWith(".bicep"))
      .flatMap((p) =>
        readRepoFile(p)
          .split("\n")
          .map((line, i, lines) => ({ line, i, lines, p }))
          .filter(({ line }) => /#disable-(next-line|diagnostics)/.test(line))
          .filter(({ line, i, lines }) => !/#disable-next-line\s+[\w-]+(\s+[\w-]+)*\s+\/\/\s*\S/.test(line) && !/^\s*\/\/\s*\S/.test(lines[i - 1] ?? ""))
          .map(({ p: path, i }) => `${path}:${i + 1}`),
      );
    expect(bare, "#disable-next-line needs a one-line reason (a // comment on it or just above)").toEqual([]);
  });
});

if (!present) {
  const message = `Bicep CLI ${version} not installed (${INSTALL}): compile and lint of infra/ skipped`;
  if (inCI) {
    describe("Bicep CLI", () => {
      it(`is installed under CI (${INSTALL} in .ci/run)`, () => {
        throw new Error(`${message}; CI is set, so this fails instead of skipping`);
      });
    });
  } else {
    process.stderr.write(`${message}\n`);
    describe.skip(message, () => {
      it("compiles and lints infra/", () => undefined);
    });
  }
} else {
  describe(`Bicep CLI ${version}`, () => {
    let out: string;
    let build: { stdout: string; stderr: string };
    let lint: { stdout: string; stderr: string };

    beforeAll(async () => {
      out = mkdtempSync(join(tmpdir(), "safedata-bicep-"));
      const options = { cwd: REPO, maxBuffer: 64 * 1024 * 1024 };
      // The two runs are independent: side by side they take the time of one.
      [build, lint] = await Promise.all([
        run(cli, ["build", "infra/main.bicep", "--outfile", join(out, "main.json")], options),
        run(cli, ["lint", "--pattern", "infra/**/*.bicep"], options).catch((err: { stdout?: string; stderr?: string }) => ({
          stdout: err.stdout ?? "",
          stderr: err.stderr ?? String(err),
        })),
      ]);
    }, 120_000);
    afterAll(() => rmSync(out, { recursive: true, force: true }));

    it("is the pinned version", async () => {
      const { stdout } = await run(cli, ["--version"]);
      expect(stdout).toMatch(new RegExp(`^Bicep CLI version ${version.replace(/\./g, "\\.")} `));
    });

    it("compiles infra/main.bicep with no error and no warning", () => {
      expect(`${build.stdout}${build.stderr}`.trim()).toBe("");
    });

    it("lints every Bicep file with no error and no warning (bicepconfig.json)", () => {
      expect(`${lint.stdout}${lint.stderr}`.trim()).toBe("");
    });

    it(`produces exactly the committed ${COMPILED} (otherwise run ${REBUILD})`, () => {
      const fresh = readFileSync(join(out, "main.json"), "utf8");
      expect(fresh === readRepoFile(COMPILED), `${COMPILED} is out of date with the Bicep: run ${REBUILD} and commit it`).toBe(true);
    });
  });
}
