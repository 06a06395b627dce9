/**
 * Reading `If-Match` (RFC 9110 §13.1.1): `*`, or a comma-separated list of entity tags (§8.8.3), each an opaque
 * quoted string, `W/` in front for a weak one. If-Match compares strongly, so a weak tag never matches; it is kept
 * here (prefixed) only so that it is seen not to match. A value that is neither (garbage, an unquoted tag) names
 * nothing and so matches nothing: the condition fails (412), it is not a syntax error.
 */

/** etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3). */
const ENTITY_TAG = /^(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"$/;

/** The header's value as the use cases read it: null when absent, `*`, or the strong tags it names (quoted). */
export function parseIfMatch(header: string | null): null | "*" | string[] {
  if (header === null) return null;
  const value = header.trim();
  if (value === "*") return "*";
  const tags: string[] = [];
  for (const raw of value.split(",")) {
    const item = raw.trim();
    if (item === "") continue; // RFC 9110 §5.6.1: empty list elements are ignored
    const m = ENTITY_TAG.exec(item);
    // A weak tag or anything that is not an entity tag cannot match strongly: it adds nothing to compare.
    if (m && !m[1]) tags.push(`"${m[2]}"`);
  }
  return tags;
}
