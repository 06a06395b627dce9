/**
 * The test fakes' own certificate (tests/fakes/acs-email-fake.ts): valid DER whatever its random serial. A serial
 * whose first byte came out 0x00 before a byte below 0x80 was written with a leading zero that DER forbids, and
 * OpenSSL refused the certificate ("illegal padding"): one run in 256 of every test using the fake TLS endpoints.
 */
import { X509Certificate } from "node:crypto";
import fc from "fast-check";
import { describe, it } from "@jest/globals";
import { expect } from "../helpers/expect";
import { selfSignedCertificate } from "../fakes/acs-email-fake";

/** The serial's number: the bytes as a big-endian number with the top bit cleared, as the fake makes it positive. */
function serialNumberOf(bytes: Buffer): bigint {
  const b = Buffer.from(bytes);
  b[0] = b[0]! & 0x7f;
  return BigInt(`0x${b.toString("hex")}`);
}

/** Parses the certificate as OpenSSL does (it throws on DER it refuses) and gives its serial's number. */
const parsedSerial = (cert: string) => BigInt(`0x${new X509Certificate(cert).serialNumber}`);

describe("the fakes' self-signed certificate", () => {
  it.each([
    ["a zero byte before one below 0x80", "00017f3a5a0fbc720bdf8d3f3283b0d1"],
    ["two zero bytes", "0000053a5a0fbc720bdf8d3f3283b0d1"],
    ["a zero byte before one of 0x80 or more", "0080aa3a5a0fbc720bdf8d3f3283b0d1"],
    ["every byte zero but the last", "00000000000000000000000000000001"],
    ["all zero", "00000000000000000000000000000000"],
    ["a first byte with its top bit set", "ff017f3a5a0fbc720bdf8d3f3283b0d1"],
  ])("is accepted by OpenSSL with a serial of %s", (_what, hex) => {
    const serial = Buffer.from(hex, "hex");
    expect(parsedSerial(selfSignedCertificate({ serial }).cert)).toBe(serialNumberOf(serial));
  });

  it("is accepted by OpenSSL for any serial (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const serial = Buffer.from(bytes);
        expect(parsedSerial(selfSignedCertificate({ serial }).cert)).toBe(serialNumberOf(serial));
      }),
      { numRuns: 100 },
    );
  });
});
