/**
 * CSV for spreadsheets and audits: RFC 4180 (fields separated by commas, records ended by CRLF, a field holding a
 * comma, a double quote, CR or LF enclosed in double quotes with its double quotes doubled), and safe to open in a
 * spreadsheet: every cell that begins with `=`, `+`, `-`, `@`, a tab or a carriage return is neutralised by a leading
 * single quote, so no value is run as a formula (OWASP "CSV Injection"). Written here rather than taken from a
 * library: it is these few lines, and the neutralisation is the part libraries leave out.
 */

/** Characters a spreadsheet reads as the start of a formula (or that hide one after them). */
const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One cell as it is written: neutralised, then quoted when RFC 4180 asks. */
export function csvCell(value: string | number | boolean | null | undefined): string {
  let text = value === null || value === undefined ? "" : String(value);
  if (FORMULA_START.test(text)) text = "'" + text;
  return NEEDS_QUOTES.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** A whole document: a header record, then one record per row, each ended by CRLF. */
export function toCsv(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null | undefined>>): string {
  return [header, ...rows].map((r) => r.map(csvCell).join(",") + "\r\n").join("");
}
