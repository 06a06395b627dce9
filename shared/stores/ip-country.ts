/**
 * The country of an IP address, looked up offline in the MaxMind GeoLite2 Country data that the `geoip-country` npm
 * package ships (data/geoip-country*.dat, read into memory at the first look-up: about 18 MB, ~20 ms). No
 * network look-up is ever made: the package's own updater (`updateDatabase`, `startWatchingDataUpdate`) is never
 * called, and the data is kept current by updating the package (its version carries the data's build date:
 * 5.0.YYYYMMDDhhmm). GeoLite2 is MaxMind's, under the GeoLite2 End User License Agreement shipped as the package's
 * EULA file (attribution; use current data): see README "Consent records".
 *
 * The data maps addresses to countries only (no region). Reserved, private and documentation ranges map to nothing.
 */
import { readFileSync } from "node:fs";
type GeoIp = typeof import("geoip-country");
let geoipLib: GeoIp | undefined;
/** The package, loaded at the first look-up (a process that never derives a country does not hold its data). */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const geoip = (): GeoIp => (geoipLib ??= require("geoip-country") as GeoIp);

export interface IpCountry {
  /** ISO 3166-1 alpha-2, as the data has it. */
  country: string;
  /** Which data answered: the package and its version. */
  database: string;
}

/** Looks up the country an address is registered in; undefined when the data has none for it. */
export interface IpCountryLookup {
  lookup(ip: string): IpCountry | undefined;
  /** The database's name and version, as recorded with each derived country. */
  readonly database: string;
}

function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(require.resolve("geoip-country/package.json"), "utf8")) as { version?: unknown };
  return typeof manifest.version === "string" ? manifest.version : "unknown";
}

/** The GeoLite2 Country data inside the geoip-country package. */
export class GeoIpCountryLookup implements IpCountryLookup {
  readonly database = `geoip-country ${packageVersion()} (MaxMind GeoLite2 Country)`;

  lookup(ip: string): IpCountry | undefined {
    const hit = geoip().lookup(ip);
    return hit && typeof hit.country === "string" && hit.country !== "" ? { country: hit.country, database: this.database } : undefined;
  }
}
