/**
 * The CSV writer of the requests list (shared/http/csv.ts): what a strict RFC 4180 reader gets back is what was
 * written, except that a cell beginning with =, +, -, @, a tab or a carriage return comes back with a leading single
 * quote, so a spreadsheet shows it as text instead of running it.
 */
import fc from "fast-check";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { csvCell, toCsv } from "../../shared/http/csv";

/** A strict RFC 4180 reader (records end with CRLF; quoted fields may hold anything; a stray quote is an error). */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let i = 0;
  while (i < text.length) {
    const record: string[] = [];
    for (;;) {
      let field = "";
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= text.length) throw new Error("unterminated quoted field");
          if (text[i] === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          field += text[i++];
        }
      } else {
        while (i < text.length && text[i] !== "," && text[i] !== "\r") {
          if (text[i] === '"' || text[i] === "\n") throw new Error(`unquoted field holds ${JSON.stringify(text[i])}`);
          field += text[i++];
        }
      }
      record.push(field);
      if (text[i] === ",") {
        i++;
        continue;
      }
      if (text[i] === "\r" && text[i + 1] === "\n") {
        i += 2;
        break;
      }
      throw new Error(`expected a comma or CRLF at ${i}`);
    }
    records.push(record);
  }
  return records;
}

const neutral = (s: string) => (/^[=+\-@\t\r]/.test(s) ? "'" + s : s);

const cell = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: "grapheme", maxLength: 10 }),
  fc.constantFrom("=1+1", "+SUM(A1)", "-2", "@cmd", "\t=x", "\r=x", '=HYPERLINK("http://x","y")', "a,b", 'say "hi"', "line\r\nbreak", "\n", "", "'"),
);

describe("CSV cells", () => {
  it("neutralises formula starts and quotes what RFC 4180 asks", () => {
    expect(csvCell("=1+1")).toBe("'=1+1");
    expect(csvCell("-3")).toBe("'-3");
    expect(csvCell("@SUM(A1)")).toBe("'@SUM(A1)");
    expect(csvCell("\tx")).toBe("'\tx");
    expect(csvCell("\r=x")).toBe(`"'\r=x"`);
    expect(csvCell('=HYPERLINK("http://x")')).toBe(`"'=HYPERLINK(""http://x"")"`);
    expect(csvCell("a,b")).toBe('"a,b"');
    expect(csvCell(null)).toBe("");
    expect(csvCell("plain")).toBe("plain");
    expect(toCsv(["a", "b"], [["1", "x,y"]])).toBe('a,b\r\n1,"x,y"\r\n');
  });

  it("reads back as written, every dangerous start neutralised, for any cells", () => {
    fc.assert(
      fc.property(fc.array(fc.array(cell, { minLength: 1, maxLength: 6 }), { maxLength: 8 }), fc.integer({ min: 1, max: 6 }), (rows, width) => {
        const shaped = rows.map((r) => Array.from({ length: width }, (_, i) => r[i % r.length]!));
        const header = Array.from({ length: width }, (_, i) => `c${i}`);
        const parsed = parseCsv(toCsv(header, shaped));
        expect(parsed).toEqual([header, ...shaped.map((r) => r.map(neutral))]);
        for (const record of parsed.slice(1)) for (const value of record) expect(/^[=+\-@\t\r]/.test(value)).toBe(false);
      }),
      { numRuns: 500 },
    );
  });
});
