/** The languages the service writes to people and tenants in (e-mail templates, dates). */
export const LANGUAGES = ["en", "da"] as const;
export type Language = (typeof LANGUAGES)[number];

/** A tenant's language unless it chose another. */
export const DEFAULT_LANGUAGE: Language = "en";
