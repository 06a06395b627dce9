/** The part of geoip-country's API the service uses (the package ships no types). */
declare module "geoip-country" {
  interface GeoIpCountry {
    /** ISO 3166-1 alpha-2 as the GeoLite2 data has it. */
    country: string;
  }
  /** The country an IPv4 or IPv6 address is registered in, from the database shipped in the package; null when unknown. */
  export function lookup(ip: string): GeoIpCountry | null;
}
