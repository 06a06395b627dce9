// @ts-check
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import layers from "./eslint.layers.cjs";

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "coverage/**", ".local/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: { arguments: false } }],
      "@typescript-eslint/await-thenable": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      // Deployed code logs only through the structured, scrubbed Log (shared/observability.ts); dev, bench, tests and infra may print.
      "no-console": "error",
      eqeqeq: ["error", "smart"],
    },
  },
  // The architecture's layers (README "Architecture").
  ...layers,
  {
    files: ["dev/**", "bench/**", "tests/**", "infra/**"],
    rules: { "no-console": "off" },
  },
  {
    files: ["**/*.mjs", "**/*.cjs", "**/*.js"],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // Tool configuration in CommonJS (jest.config.js).
    files: ["**/*.js", "**/*.cjs"],
    languageOptions: { sourceType: "commonjs", globals: { module: "writable", require: "readonly", __dirname: "readonly" } },
  },
);
