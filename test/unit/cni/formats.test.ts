import { isIP } from "node:net";
import { describe, expect, it } from "vitest";
import { formats, ipFamily, isCidr } from "../../../shared/cni/formats";

const samples = [
  "0.0.0.0", "10.1.0.5", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.5", "1.2.3.-1", "", " 1.2.3.4",
  "::", "::1", "fd00::5", "fe80::1:2:3:4", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9",
  "1:2:3:4:5:6:7:8::", "1::2::3", ":1::", "1:::2", "12345::", "g::1", "::ffff:10.1.2.3", "::10.1.2.3", "1:2:3:4:5:6:1.2.3.4",
  "1:2:3:4:5:6:7:1.2.3.4", "::ffff:1.2.3", "1.2.3.4::", "FD00::ABCD",
];

describe("ipFamily", () => {
  it("agrees with node:net isIP on every sample", () => {
    for (const s of samples) expect([s, ipFamily(s)]).toEqual([s, isIP(s)]);
  });
});

describe("isCidr and formats", () => {
  it("accepts addresses with a valid prefix length", () => {
    for (const s of ["10.0.0.0/8", "10.1.0.5/24", "0.0.0.0/0", "fd00::/64", "::/0", "fd00::1/128"]) expect(isCidr(s)).toBe(true);
  });

  it("rejects missing, oversized or malformed prefixes", () => {
    for (const s of ["10.0.0.0", "10.0.0.0/33", "fd00::/129", "/24", "10.0.0.0/", "10.0.0.0/2a", "10.0.0/8", "10.0.0.0/0008"]) expect(isCidr(s)).toBe(false);
  });

  it("offers ip, ipv4, ipv6 and cidr formats", () => {
    expect(formats["ip"]?.("fd00::1")).toBe(true);
    expect(formats["ipv4"]?.("fd00::1")).toBe(false);
    expect(formats["ipv6"]?.("fd00::1")).toBe(true);
    expect(formats["cidr"]?.("fd00::1")).toBe(false);
  });
});
