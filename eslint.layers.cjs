// @ts-check
/**
 * The architecture's import rules, enforced by ESLint (`no-restricted-imports` per folder) and checked by
 * tests/unit/architecture.test.ts. See README.md "Architecture" for the layers and why.
 *
 *   functions/         thin triggers: use cases, domain, http, config; never a store or an SDK client directly
 *   shared/domain/     pure rules: no I/O, no Azure, nothing from the other layers
 *   shared/usecases/   the application core: domain, crypto, store and adapter methods; no Azure SDK, no HTTP, no SQL
 *   shared/stores/ (and keys/, email/, webhooks/)  adapters to outside systems: no Functions types, no HTTP, no use cases
 *   shared/http/       auth, validation, problem+json, OpenAPI: no use cases
 * and nothing deployed (functions/, shared/) imports the local runtime in dev/.
 */

/** @param {string} regex @param {string} message */
const rule = (regex, message) => ({ regex, message });

const NO_DEV = rule("(^|/)dev/", "deployed code never imports the local runtime (dev/)");
const NO_AZURE = rule("^(@azure/|applicationinsights$)", "no Azure SDK here: reach outside systems through a store or adapter method");
const NO_FUNCTIONS = rule("^@azure/functions$", "no Functions types here: the trigger files in functions/ translate requests and messages");
const NO_HTTP = rule("(^|/)http/", "nothing from shared/http here: HTTP is the trigger layer's concern");
const NO_USECASES = rule("(^|/)usecases/", "adapters do not call the application core");
const NO_STORES_FROM_FUNCTIONS = rule("(^|/)shared/stores/", "functions call use cases, which use stores");
const NO_IO = rule(
  "^(node:)?(fs|fs/promises|http|https|http2|net|tls|dns|dgram|child_process|cluster|worker_threads|stream|stream/promises)$",
  "the domain is pure: no I/O",
);
const NO_OUTER_LAYERS_FROM_DOMAIN = rule(
  "^\\.\\./(stores|usecases|http|keys|email|config|crypto)(/|$)|^\\.\\./(services|observability|adapters|queue-handler|sweeps|identity)$",
  "the domain is pure: it imports nothing from the other layers",
);

/** An SQL query written in the application core (queries are named store methods): its SELECT keyword. */
const SQL = "/\\bSELECT\\s/";

/** @param {ReturnType<typeof rule>[]} patterns */
const restrict = (patterns) => ({ "no-restricted-imports": ["error", { patterns }] });

/** @type {import("eslint").Linter.Config[]} */
module.exports = [
  {
    files: ["functions/**/*.ts"],
    rules: restrict([NO_DEV, NO_STORES_FROM_FUNCTIONS]),
  },
  {
    files: ["shared/**/*.ts"],
    rules: restrict([NO_DEV]),
  },
  {
    files: ["shared/domain/**/*.ts"],
    rules: restrict([NO_DEV, NO_AZURE, NO_IO, NO_OUTER_LAYERS_FROM_DOMAIN]),
  },
  {
    files: ["shared/usecases/**/*.ts"],
    rules: {
      ...restrict([NO_DEV, NO_AZURE, NO_HTTP]),
      "no-restricted-syntax": [
        "error",
        { selector: `Literal[value=${SQL}]`, message: "no SQL in the application core: add a named store method" },
        { selector: `TemplateElement[value.raw=${SQL}]`, message: "no SQL in the application core: add a named store method" },
      ],
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
