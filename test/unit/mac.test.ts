// MAC addresses as text: what users write in configs and what results report.
import { describe, expect, it } from "vitest";
import { formatMac, parseMac } from "../../shared/mac";

describe("formatMac", () => {
  it("writes six zero-padded lower-case hex bytes, the inverse of parseMac", () => {
    expect(formatMac(Buffer.from([0x02, 0x0a, 0xff, 0, 0x10, 0x9]))).toBe("02:0a:ff:00:10:09");
    expect(formatMac(parseMac("AA-BB-cc-01-02-03"))).toBe("aa:bb:cc:01:02:03");
  });
});
