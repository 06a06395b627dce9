// @ts-check
/**
 * Jest runs every test in tests/ (unit, integration against embedded Azurite and Cosmos, infra, runtime).
 * TypeScript is compiled by SWC (types are checked by `tsc --noEmit` in `npm test`, not here), which keeps the
 * transform far below the time the tests themselves take.
 *
 * @type {import("jest").Config}
 */
module.exports = {
  testEnvironment: "node",
  roots: ["<rootDir>/tests"],
  testMatch: ["**/*.test.ts"],
  transform: {
    "^.+\\.ts$": [
      "@swc/jest",
      {
        jsc: { parser: { syntax: "typescript" }, target: "es2022" },
        module: { type: "commonjs" },
        sourceMaps: "inline",
      },
    ],
  },
  moduleFileExtensions: ["ts", "js", "json"],
  moduleNameMapper: {
    // The Functions worker injects this module; the local runtime provides a stand-in. Node's resolver is hooked for
    // that (dev/runtime/core-api.ts), but Jest resolves modules itself, so it is mapped to the same stand-in here.
    "^@azure/functions-core$": "<rootDir>/tests/helpers/functions-core.ts",
    // Sources import with Node16's explicit ".js" on relative paths; Jest resolves the .ts file.
    "^(\\.{1,2}/.*)\\.js$": "$1",
  },
  // Integration files start their own embedded Azurite + Cosmos on free ports and mostly wait on I/O, so a few run
  // at once even on 2 cores (Jest would otherwise use cores - 1 = one worker).
  maxWorkers: 3,
  testTimeout: 90_000,
  // A file's own servers are closed in afterAll; anything else still open after the run is a bug to find, not hide.
  openHandlesTimeout: 10_000,
};
