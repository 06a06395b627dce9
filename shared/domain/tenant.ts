/**
 * Tenants are the data controllers that use safedata. Pure rules: id and API key formats, the supervisory
 * authorities a tenant can name, and the status transitions an operator may make.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** Lower-case RFC 4648 base32 without padding; safe in URLs, Key Vault secret names and blob paths. */
export function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

export const TENANT_ID_PATTERN = /^tn-[a-z2-7]{16}$/;
export const tenantIdSchema = z.string().regex(TENANT_ID_PATTERN, "must be a tenant id like tn-abcdefghijklmnop");

export function newTenantId(random: (n: number) => Buffer = randomBytes): string {
  return "tn-" + base32(random(10));
}

export function newKeyId(random: (n: number) => Buffer = randomBytes): string {
  return "key-" + base32(random(5));
}

/**
 * API keys look like `sdk_<tenantId>_<43 base64url chars>`: the tenant id lets the service find the one tenant
 * document to compare against, so authentication is a point read, never a search across tenants.
 */
const API_KEY_PATTERN = /^sdk_(tn-[a-z2-7]{16})_([A-Za-z0-9_-]{43})$/;

export function newApiKey(tenantId: string, random: (n: number) => Buffer = randomBytes): string {
  return `sdk_${tenantId}_${random(32).toString("base64url")}`;
}

export function parseApiKey(key: string): { tenantId: string } | undefined {
  const m = API_KEY_PATTERN.exec(key);
  return m ? { tenantId: m[1]! } : undefined;
}

/** Keys carry 256 random bits, so a plain SHA-256 is enough to make the stored hash useless to a thief. */
export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** Compares a presented secret with a stored SHA-256 hex digest in constant time. */
export function matchesHash(presented: string, storedHexHash: string): boolean {
  const a = createHash("sha256").update(presented, "utf8").digest();
  const b = Buffer.from(storedHexHash, "hex");
  return b.length === a.length && timingSafeEqual(a, b);
}

/** Constant-time comparison of two secrets of any length (hashing first equalises the lengths). */
export function secretsEqual(a: string, b: string): boolean {
  return matchesHash(a, createHash("sha256").update(b, "utf8").digest("hex"));
}

/**
 * Supervisory authorities of the EU/EEA member states (GDPR Art. 51). Germany has a federal and sixteen state
 * authorities: the federal one is listed and a tenant may name its state authority instead.
 */
export const SUPERVISORY_AUTHORITIES = {
  AT: "Österreichische Datenschutzbehörde",
  BE: "Autorité de protection des données / Gegevensbeschermingsautoriteit",
  BG: "Commission for Personal Data Protection",
  HR: "Agencija za zaštitu osobnih podataka",
  CY: "Commissioner for Personal Data Protection",
  CZ: "Úřad pro ochranu osobních údajů",
  DK: "Datatilsynet",
  EE: "Andmekaitse Inspektsioon",
  FI: "Tietosuojavaltuutetun toimisto",
  FR: "Commission Nationale de l'Informatique et des Libertés (CNIL)",
  DE: "Bundesbeauftragte für den Datenschutz und die Informationsfreiheit (BfDI)",
  GR: "Hellenic Data Protection Authority",
  HU: "Nemzeti Adatvédelmi és Információszabadság Hatóság",
  IE: "Data Protection Commission",
  IT: "Garante per la protezione dei dati personali",
  LV: "Datu valsts inspekcija",
  LT: "Valstybinė duomenų apsaugos inspekcija",
  LU: "Commission nationale pour la protection des données",
  MT: "Information and Data Protection Commissioner",
  NL: "Autoriteit Persoonsgegevens",
  PL: "Urząd Ochrony Danych Osobowych",
  PT: "Comissão Nacional de Proteção de Dados",
  RO: "Autoritatea Națională de Supraveghere a Prelucrării Datelor cu Caracter Personal",
  SK: "Úrad na ochranu osobných údajov Slovenskej republiky",
  SI: "Informacijski pooblaščenec",
  ES: "Agencia Española de Protección de Datos",
  SE: "Integritetsskyddsmyndigheten",
  IS: "Persónuvernd",
  LI: "Datenschutzstelle",
  NO: "Datatilsynet",
} as const;

export type AuthorityCountry = keyof typeof SUPERVISORY_AUTHORITIES;
export const authorityCountries = Object.keys(SUPERVISORY_AUTHORITIES) as [AuthorityCountry, ...AuthorityCountry[]];

export function authorityFor(country: AuthorityCountry, nameOverride?: string): { country: AuthorityCountry; name: string } {
  return { country, name: nameOverride ?? SUPERVISORY_AUTHORITIES[country] };
}

export type TenantStatus = "active" | "suspended";

/** A tenant's time zone unless it chose another: Copenhagen (the product's home; the authorised data location is Amsterdam, the same zone). */
export const DEFAULT_TIME_ZONE = "Europe/Copenhagen";

/** Operator actions on a tenant's status; returns the new status or why the action is refused. */
export function transitionTenant(current: TenantStatus, action: "suspend" | "reactivate"): { ok: true; status: TenantStatus } | { ok: false; reason: string } {
  if (action === "suspend") {
    return current === "active" ? { ok: true, status: "suspended" } : { ok: false, reason: "the tenant is already suspended" };
  }
  return current === "suspended" ? { ok: true, status: "active" } : { ok: false, reason: "the tenant is already active" };
}

/**
 * A webhook must name a public host: no user name or password in the URL (it would be stored and shown), no IP
 * literal and no local or single-label name (the service would be made to call into its own network). Returns what
 * is wrong, or undefined.
 */
export function publicWebhookProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "must be a URL";
  }
  if (url.username !== "" || url.password !== "") return "must not contain a user name or password";
  // The WHATWG URL parser turns every numeric spelling of an IPv4 address (decimal, octal, hex) into dotted form,
  // and keeps IPv6 literals in brackets.
  const host = url.hostname.toLowerCase().replace(/\.$/, "");
  if (host.startsWith("[") || /^\d{1,3}(\.\d{1,3}){3}$/.test(host)) return "must name a host, not an IP address";
  const labels = host.split(".");
  if (labels.some((l) => l === "")) return "must be a well-formed host name";
  if (labels.length < 2 || host === "localhost" || /\.(localhost|localdomain|local|internal|lan|home\.arpa|intranet)$/.test(host)) {
    return "must name a public host (not localhost, a single-label or a local name)";
  }
  return undefined;
}
