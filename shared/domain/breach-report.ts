/**
 * The rules of the authority report (GDPR Art. 33(3)) that more than one layer names: the contradictions between
 * the controller's newest decision on the persons (Art. 34(1), 34(3)) and what the stored facts say was done, which
 * the report names instead of repeating the decision.
 * - `decided-told-not-instructed`: the decision says the persons are told, but no notice of that version (or a
 *   later one) was instructed;
 * - `decided-not-told-but-instructed`: the decision says they are not told, but notices of that version (or a later
 *   one) were instructed after it (recording such a decision after the instruction is refused);
 * - `decided-told-but-cancelled`: the decision says the persons are told, but the tenant cancelled the notices of
 *   that version (or the later one instructed), before or after the decision: those not told then are never told of
 *   that version (it cannot be instructed again; only a newer version's notices tell them);
 * - `exemption-c-without-public-communication`: the decision relies on Art. 34(3)(c), which asks for a public
 *   communication instead, and none is recorded.
 */
export const PERSONS_CONFLICTS = ["decided-told-not-instructed", "decided-not-told-but-instructed", "decided-told-but-cancelled", "exemption-c-without-public-communication"] as const;
export type PersonsConflict = (typeof PERSONS_CONFLICTS)[number];
