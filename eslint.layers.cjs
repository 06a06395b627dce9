// @ts-check
/**
 * The architecture's import rules, enforced by ESLint and checked by tests/unit/architecture.test.ts. See README.md
 * "Architecture" for the layers and why.
 *
 *   functions/         thin triggers: use cases, domain, http, config, @azure/functions; never a store or another
 *                      Azure SDK client directly
 *   shared/domain/     pure rules: only other domain modules, zod, node:crypto and the pure libraries in
 *                      DOMAIN_LIBRARIES (an allow-list: anything else, I/O, network, Azure or another layer, is refused)
 *   shared/usecases/   the application core: domain, crypto, store and adapter methods; no Azure SDK, no HTTP, no
 *                      network, no SQL
 *   shared/stores/ (and keys/, email/, webhooks/)  adapters to outside systems: no Functions types, no HTTP, no use cases
 *   shared/http/       auth, validation, problem+json, OpenAPI: no use cases
 * and nothing deployed (functions/, shared/) imports the local runtime in dev/.
 *
 * A module is named in more ways than `import ... from`: `export ... from`, `import("x")`, the type `import("x").T`,
 * `require("x")` and `import x = require("x")`. `no-restricted-imports` sees the first two; the local rule
 * `layers/no-restricted-modules` applies the same patterns to the others, so no spelling gets around a layer.
 */

/** @param {string} regex @param {string} message */
const rule = (regex, message) => ({ regex, message });

/**
 * The libraries the domain may use besides zod and node:crypto: each is pure (parsing, formatting, data tables; no
 * I/O, no network, no globals touched). README "Architecture" lists the same. Add one here only with that in mind.
 */
const DOMAIN_LIBRARIES = [
  "@iabgpp/cmpapi", // GPP consent strings: decoding
  "@iabtechlabtcf/core", // TCF consent strings: decoding (its vendor-list loader is never used)
  "content-type", // media types: parsing (RFC 9110 §8.3)
  "fresh", // conditional requests: ETag / If-None-Match comparison
  "i18n-iso-countries", // ISO 3166 country codes and names: data
  "ipaddr.js", // IP addresses and ranges: parsing
  "range-parser", // Range headers: parsing (RFC 9110 §14)
];
const escapeRegex = (/** @type {string} */ s) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

const NO_DEV = rule("(^|/)dev/", "deployed code never imports the local runtime (dev/)");
const NO_AZURE = rule("^(@azure/|applicationinsights$)", "no Azure SDK here: reach outside systems through a store or adapter method");
const NO_SDK_FROM_FUNCTIONS = rule(
  "^(@azure/(?!functions$)|applicationinsights$)",
  "functions never hold an SDK client: call a use case, which uses a store or adapter method",
);
const NO_FUNCTIONS = rule("^@azure/functions$", "no Functions types here: the trigger files in functions/ translate requests and messages");
const NO_HTTP = rule("(^|/)http/", "nothing from shared/http here: HTTP is the trigger layer's concern");
const NO_USECASES = rule("(^|/)usecases/", "adapters do not call the application core");
const NO_STORES_FROM_FUNCTIONS = rule("(^|/)shared/stores/", "functions call use cases, which use stores");
const NO_NETWORK = rule(
  "^((node:)?(http|https|http2|net|tls|dns|dns/promises|dgram)|undici|node-fetch|axios|got|ws|superagent|request)$",
  "no network here: reach outside systems through a store or adapter method",
);
const DOMAIN_ONLY = rule(
  `^(?!(\\./[^/]+|zod|node:crypto|${DOMAIN_LIBRARIES.map(escapeRegex).join("|")})$)`,
  `the domain is pure: it imports only other domain modules (./x), zod, node:crypto and the pure libraries listed in eslint.layers.cjs (${DOMAIN_LIBRARIES.join(", ")})`,
);

/** Network calls without an import: the global fetch and its kin. */
const NETWORK_GLOBALS = ["fetch", "XMLHttpRequest", "WebSocket", "EventSource"].map((name) => ({
  name,
  message: "no network here: reach outside systems through a store or adapter method",
}));

/** The same, as properties of the global object. */
const NETWORK_PROPERTIES = NETWORK_GLOBALS.map(({ name, message }) => ({ object: "globalThis", property: name, message }));

/** An SQL query (Cosmos SQL is SELECT ... FROM ...), in any letter case: queries are named store methods. */
const SQL = /\bselect\s[\s\S]*\bfrom\s+\w/i;

/** @typedef {{ regex: string, message: string }} Pattern */

/**
 * The local rules: `no-restricted-modules` (the module names no-restricted-imports does not see) and `no-sql`.
 * @type {import("eslint").ESLint.Plugin}
 */
const plugin = {
  rules: {
    "no-restricted-modules": {
      meta: {
        type: "problem",
        schema: [{ type: "object", properties: { patterns: { type: "array" } }, additionalProperties: false }],
        docs: { description: "the layer's import patterns, for import(), import types, require() and import = require()" },
      },
      create(context) {
        const patterns = /** @type {Pattern[]} */ (context.options[0]?.patterns ?? []).map((p) => ({ re: new RegExp(p.regex), message: p.message }));
        /** @param {import("estree").Node} node @param {unknown} name */
        const check = (node, name) => {
          if (typeof name !== "string") return;
          const hit = patterns.find((p) => p.re.test(name));
          if (hit) context.report({ node, message: `'${name}' is restricted here: ${hit.message}` });
        };
        /** @type {Record<string, (node: any) => void>} */
        const visitors = {
          ImportExpression: (node) => check(node, node.source?.value),
          TSImportType: (node) => check(node, node.source?.value ?? node.argument?.literal?.value),
          TSExternalModuleReference: (node) => check(node, node.expression?.value),
          CallExpression: (node) => {
            if (node.callee.type === "Identifier" && node.callee.name === "require") check(node, node.arguments[0]?.value);
          },
        };
        return visitors;
      },
    },
    "no-sql": {
      meta: { type: "problem", schema: [], docs: { description: "no SQL text (any letter case) in the application core" } },
      create(context) {
        const message = "no SQL in the application core: add a named store method";
        /** @type {Record<string, (node: any) => void>} */
        const visitors = {
          Literal: (node) => {
            if (typeof node.value === "string" && SQL.test(node.value)) context.report({ node, message });
          },
          TemplateLiteral: (node) => {
            const text = node.quasis.map((/** @type {any} */ q) => q.value.cooked ?? q.value.raw).join(" x ");
            if (SQL.test(text)) context.report({ node, message });
          },
        };
        return visitors;
      },
    },
  },
};

/** @param {Pattern[]} patterns */
const restrict = (patterns) => ({
  "no-restricted-imports": ["error", { patterns }],
  "layers/no-restricted-modules": ["error", { patterns }],
});

/** @type {import("eslint").Linter.Config[]} */
module.exports = [
  {
    files: ["**/*.ts"],
    plugins: { layers: plugin },
  },
  {
    files: ["functions/**/*.ts"],
    rules: restrict([NO_DEV, NO_STORES_FROM_FUNCTIONS, NO_SDK_FROM_FUNCTIONS]),
  },
  {
    files: ["shared/**/*.ts"],
    rules: restrict([NO_DEV]),
  },
  {
    files: ["shared/domain/**/*.ts"],
    rules: {
      ...restrict([DOMAIN_ONLY]),
      "no-restricted-globals": ["error", ...NETWORK_GLOBALS],
      "no-restricted-properties": ["error", ...NETWORK_PROPERTIES],
    },
  },
  {
    files: ["shared/usecases/**/*.ts"],
    rules: {
      ...restrict([NO_DEV, NO_AZURE, NO_HTTP, NO_NETWORK]),
      "no-restricted-globals": ["error", ...NETWORK_GLOBALS],
      "no-restricted-properties": ["error", ...NETWORK_PROPERTIES],
      "layers/no-sql": "error",
    },
  },
  {
    files: ["shared/stores/**/*.ts", "shared/keys/**/*.ts", "shared/email/**/*.ts", "shared/webhooks/**/*.ts"],
    rules: restrict([NO_DEV, NO_FUNCTIONS, NO_HTTP, NO_USECASES]),
  },
  {
    files: ["shared/http/**/*.ts"],
    rules: restrict([NO_DEV, NO_USECASES]),
  },
];

module.exports.DOMAIN_LIBRARIES = DOMAIN_LIBRARIES;
