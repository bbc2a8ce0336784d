// MAC addresses as text: what users write in configs and what results report.
import { describe, expect, it } from "vitest";
import { formatMac, parseMac } from "../../shared/mac";

describe("formatMac", () => {
  it("writes six zero-padded lower-case hex bytes, the inverse of parseMac", () => {
    expect(formatMac(Buffer.from([0x02, 0x0a, 0xff, 0, 0x10, 0x9]))).toBe("02:0a:ff:00:10:09");
    expect(formatMac(parseMac("AA-BB-cc-01-02-03"))).toBe("aa:bb:cc:01:02:03");
  });
});

describe("parseMac", () => {
  it("takes six hex pairs split by : or -, in any case", () => {
    expect([...parseMac("02:0A:ff:00:10:09")]).toEqual([2, 10, 255, 0, 16, 9]);
    expect([...parseMac("02-0a:ff-00:10-09")]).toEqual([2, 10, 255, 0, 16, 9]);
  });

  it("takes the dotted form Go reads too", () => {
    expect([...parseMac("020A.ff00.1009")]).toEqual([2, 10, 255, 0, 16, 9]);
  });

  it.each(["", "02:0a:ff:00:10", "02:0a:ff:00:10:09:", "02:0a:ff:00:10:0g", "02.0a.ff.00.10.09", "2:0a:ff:00:10:099", "02:0a:ff:00:10:9", "0x:0a:ff:00:10:09", "020a.ff00-1009", "020a:ff00:1009", "020a.ff00.100g"])(
    "refuses %j",
    (s) => expect(() => parseMac(s)).toThrow(`invalid MAC address "${s}"`),
  );
});
