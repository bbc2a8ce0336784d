import { describe, expect, it } from "vitest";
import {
  addressOf,
  compareIP,
  contains,
  containsNet,
  formatCIDR,
  formatIP,
  ipFromBytes,
  ipToBytes,
  isIPv4,
  isIPv6,
  lastOf,
  maskOf,
  networkOf,
  nextIP,
  overlaps,
  parseCIDR,
  parseIP,
  prevIP,
  type IP,
  type IPNet,
} from "../../shared/ip";

function ip(s: string): IP {
  const parsed = parseIP(s);
  if (parsed === null) throw new Error(`test address ${s} does not parse`);
  return parsed;
}

function net(s: string): IPNet {
  const parsed = parseCIDR(s);
  if (parsed === null) throw new Error(`test network ${s} does not parse`);
  return parsed;
}

const text = (a: IP): string => formatIP(a);

describe("parseIP / formatIP", () => {
  it("parses IPv4", () => {
    expect(ip("10.1.2.3")).toEqual({ family: 4, value: 0x0a010203n });
    expect(ip("0.0.0.0").value).toBe(0n);
    expect(ip("255.255.255.255").value).toBe(0xffffffffn);
  });

  it.each(["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.-4", "1.2.3.4 ", "a.b.c.d", "1..2.3", "1.2.3.4/24"])(
    "refuses IPv4 %j",
    (s) => expect(parseIP(s)).toBeNull(),
  );

  it("parses IPv6 forms", () => {
    expect(ip("::").value).toBe(0n);
    expect(ip("::1").value).toBe(1n);
    expect(ip("1::").value).toBe(1n << 112n);
    expect(ip("FD00::A:1")).toEqual(ip("fd00:0:0:0:0:0:a:1"));
    expect(ip("2001:db8:0:0:0:0:0:1").value).toBe(0x20010db8000000000000000000000001n);
    expect(ip("::ffff:10.0.0.1").value).toBe(0xffff0a000001n);
    expect(ip("::10.0.0.1").value).toBe(0x0a000001n);
    expect(ip("64:ff9b::192.0.2.33").value).toBe(0x0064ff9b0000000000000000c0000221n);
    expect(ip("1:2:3:4:5:6:1.2.3.4").value).toBe(0x0001000200030004000500060102_0304n);
  });

  it.each([
    ":",
    ":::",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1::2::3",
    "1:2:3:4:5:6:7:8::",
    "12345::",
    "g::",
    "fe80::1%eth0",
    "::1.2.3",
    "1.2.3.4::",
    ":1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:1.2.3.4",
  ])("refuses IPv6 %j", (s) => expect(parseIP(s)).toBeNull());

  it("formats IPv6 as RFC 5952 / Go's net.IP.String()", () => {
    expect(text(ip("2001:0db8:0000:0000:0000:0000:0000:0001"))).toBe("2001:db8::1");
    expect(text(ip("::"))).toBe("::");
    expect(text(ip("::1"))).toBe("::1");
    expect(text(ip("fd00::"))).toBe("fd00::");
    // A lone zero group is not compressed; the longest run wins, the first on a tie.
    expect(text(ip("1:0:2:3:4:5:6:7"))).toBe("1:0:2:3:4:5:6:7");
    expect(text(ip("1:0:0:2:0:0:0:3"))).toBe("1:0:0:2::3");
    expect(text(ip("1:0:0:2:3:0:0:4"))).toBe("1::2:3:0:0:4");
    expect(text(ip("FD00:0:0:0:0:0:A:1"))).toBe("fd00::a:1");
    expect(text(ip("::ffff:0a00:0001"))).toBe("::ffff:10.0.0.1");
  });

  it("formats IPv4 and round-trips", () => {
    for (const s of ["0.0.0.0", "10.244.1.7", "255.255.255.255", "192.168.0.254"]) expect(text(ip(s))).toBe(s);
  });

  it("classifies strings", () => {
    expect(isIPv4("10.0.0.1")).toBe(true);
    expect(isIPv4("::1")).toBe(false);
    expect(isIPv4("10.0.0.1/8")).toBe(false);
    expect(isIPv6("::1")).toBe(true);
    expect(isIPv6("10.0.0.1")).toBe(false);
  });
});

describe("CIDR", () => {
  it("parses, keeping the address as written", () => {
    const n = net("10.1.2.3/24");
    expect(text(n.ip)).toBe("10.1.2.3");
    expect(n.prefix).toBe(24);
    expect(net("::/0").prefix).toBe(0);
    expect(net("fd00::1/128").prefix).toBe(128);
  });

  it("takes the address part of CIDR text as written, and leaves a bare address alone", () => {
    expect(addressOf("10.1.2.3/24")).toBe("10.1.2.3");
    expect(addressOf("fd00::1/64")).toBe("fd00::1");
    expect(addressOf("10.1.2.3")).toBe("10.1.2.3");
  });

  it.each(["10.0.0.0", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/024", "10.0.0.0/-1", "::/129", "x/8", "10.0.0.0/8/8"])(
    "refuses %j",
    (s) => expect(parseCIDR(s)).toBeNull(),
  );

  it("formats", () => {
    expect(formatCIDR(ip("fd00:0::5"), 64)).toBe("fd00::5/64");
    expect(formatCIDR(ip("10.0.0.5"), 24)).toBe("10.0.0.5/24");
  });

  it("computes masks", () => {
    expect(text(maskOf(24, 4))).toBe("255.255.255.0");
    expect(text(maskOf(0, 4))).toBe("0.0.0.0");
    expect(text(maskOf(32, 4))).toBe("255.255.255.255");
    expect(text(maskOf(64, 6))).toBe("ffff:ffff:ffff:ffff::");
    expect(text(maskOf(128, 6))).toBe("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    expect(maskOf(0, 6).value).toBe(0n);
  });

  it.each([
    ["10.1.2.3/24", "10.1.2.0", "10.1.2.255"],
    ["10.1.2.3/31", "10.1.2.2", "10.1.2.3"],
    ["10.1.2.3/32", "10.1.2.3", "10.1.2.3"],
    ["10.1.2.3/0", "0.0.0.0", "255.255.255.255"],
    ["fd00::1:2/112", "fd00::1:0", "fd00::1:ffff"],
    ["fd00::3/127", "fd00::2", "fd00::3"],
    ["fd00::3/128", "fd00::3", "fd00::3"],
    ["fd00::3/0", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
  ])("network and last address of %s", (cidr, first, last) => {
    expect(text(networkOf(net(cidr)))).toBe(first);
    expect(text(lastOf(net(cidr)))).toBe(last);
  });

  it("contains", () => {
    expect(contains(net("10.1.0.0/16"), ip("10.1.255.255"))).toBe(true);
    expect(contains(net("10.1.0.0/16"), ip("10.2.0.0"))).toBe(false);
    expect(contains(net("10.1.2.3/32"), ip("10.1.2.3"))).toBe(true);
    expect(contains(net("10.1.2.3/32"), ip("10.1.2.4"))).toBe(false);
    expect(contains(net("0.0.0.0/0"), ip("1.2.3.4"))).toBe(true);
    // Families never mix, even for ::/0 and IPv4-mapped addresses.
    expect(contains(net("::/0"), ip("1.2.3.4"))).toBe(false);
    expect(contains(net("0.0.0.0/0"), ip("::ffff:1.2.3.4"))).toBe(false);
    expect(contains(net("fd00::/127"), ip("fd00::1"))).toBe(true);
    expect(contains(net("fd00::/127"), ip("fd00::2"))).toBe(false);
  });

  it("containsNet", () => {
    expect(containsNet(net("10.244.0.0/16"), net("10.244.3.0/24"))).toBe(true);
    expect(containsNet(net("10.244.0.0/16"), net("10.244.0.0/16"))).toBe(true);
    expect(containsNet(net("10.244.3.0/24"), net("10.244.0.0/16"))).toBe(false);
    expect(containsNet(net("10.244.0.0/16"), net("10.245.3.0/24"))).toBe(false);
    expect(containsNet(net("0.0.0.0/0"), net("fd00::/64"))).toBe(false);
  });

  it("overlaps", () => {
    expect(overlaps(net("10.0.0.0/8"), net("10.5.0.0/16"))).toBe(true);
    expect(overlaps(net("10.5.0.0/16"), net("10.0.0.0/8"))).toBe(true);
    expect(overlaps(net("10.0.0.0/24"), net("10.0.1.0/24"))).toBe(false);
    expect(overlaps(net("10.0.0.0/31"), net("10.0.0.1/32"))).toBe(true);
    expect(overlaps(net("10.0.0.2/31"), net("10.0.0.1/32"))).toBe(false);
    expect(overlaps(net("fd00::/64"), net("fd00::1/128"))).toBe(true);
    expect(overlaps(net("0.0.0.0/0"), net("::/0"))).toBe(false);
  });
});

describe("stepping and ordering", () => {
  it("steps and wraps", () => {
    expect(text(nextIP(ip("10.0.0.255")))).toBe("10.0.1.0");
    expect(text(prevIP(ip("10.0.1.0")))).toBe("10.0.0.255");
    expect(text(nextIP(ip("255.255.255.255")))).toBe("0.0.0.0");
    expect(text(prevIP(ip("0.0.0.0")))).toBe("255.255.255.255");
    expect(text(nextIP(ip("fd00::ffff")))).toBe("fd00::1:0");
    expect(text(nextIP(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")))).toBe("::");
    expect(text(prevIP(ip("::")))).toBe("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  });

  it("compares", () => {
    expect(compareIP(ip("10.0.0.1"), ip("10.0.0.2"))).toBe(-1);
    expect(compareIP(ip("10.0.0.2"), ip("10.0.0.1"))).toBe(1);
    expect(compareIP(ip("fd00::"), ip("fd00:0::0"))).toBe(0);
    expect(compareIP(ip("255.255.255.255"), ip("::"))).toBe(-1);
    expect(compareIP(ip("::"), ip("0.0.0.0"))).toBe(1);
  });
});

describe("bytes", () => {
  it("round-trips through network byte order", () => {
    expect([...ipToBytes(ip("10.1.2.3"))]).toEqual([10, 1, 2, 3]);
    const v6 = ipToBytes(ip("2001:db8::ff01"));
    expect(v6.length).toBe(16);
    expect(v6.toString("hex")).toBe("20010db80000000000000000" + "0000ff01");
    expect(text(ipFromBytes(v6))).toBe("2001:db8::ff01");
    expect(text(ipFromBytes(new Uint8Array([192, 168, 0, 1])))).toBe("192.168.0.1");
    expect(ipFromBytes(new Uint8Array([0, 0, 0, 0])).family).toBe(4);
  });

  it("refuses other lengths", () => {
    expect(() => ipFromBytes(new Uint8Array(5))).toThrow(RangeError);
  });
});
