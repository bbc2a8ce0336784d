import { describe, expect, it } from "vitest";
import { DEFAULT_DATA_DIR, parseHostLocalConfig, type HostLocalConfig } from "../../../ipam/host-local/index";
import { cniErrorOf } from "../../helpers/cni-error";
import { formatCIDR, formatIP } from "../../../shared/ip";

function parse(ipam: Record<string, unknown>, name = "net1"): HostLocalConfig {
  return parseHostLocalConfig({ type: "host-local", ...ipam }, name);
}

// The canonical ranges as text, for compact assertions.
function shape(c: HostLocalConfig): string[][] {
  return c.ranges.map((set) =>
    set.map(
      (r) =>
        `${formatCIDR(r.subnet.ip, r.subnet.prefix)} ${formatIP(r.rangeStart)}-${formatIP(r.rangeEnd)} gw ${formatIP(r.gateway)}`,
    ),
  );
}

describe("parseHostLocalConfig: defaults", () => {
  it("fills start, end and gateway as the reference does", () => {
    const c = parse({ ranges: [[{ subnet: "10.1.0.0/24" }], [{ subnet: "fd00:1::/120" }]] });
    expect(shape(c)).toEqual([
      ["10.1.0.0/24 10.1.0.1-10.1.0.254 gw 10.1.0.1"],
      // IPv6 has no broadcast: the range runs to the last address.
      ["fd00:1::/120 fd00:1::1-fd00:1::ff gw fd00:1::1"],
    ]);
    expect(c.dataDir).toBe(DEFAULT_DATA_DIR);
    // An empty dataDir is the default too, as in the reference's store.
    expect(parse({ subnet: "10.1.0.0/24", dataDir: "" }).dataDir).toBe(DEFAULT_DATA_DIR);
    expect(c.routes).toEqual([]);
    expect(c.resolvConf).toBeUndefined();
  });

  it("keeps explicit values, canonicalised", () => {
    const c = parse({
      ranges: [[{ subnet: "fd00:0:0:1::/64", rangeStart: "FD00:0:0:1::10", rangeEnd: "fd00:0:0:1::0:20", gateway: "fd00:0:0:1::fe" }]],
      dataDir: "/run/x",
      resolvConf: "/etc/resolv.conf",
    });
    expect(shape(c)).toEqual([["fd00:0:0:1::/64 fd00:0:0:1::10-fd00:0:0:1::20 gw fd00:0:0:1::fe"]]);
    expect(c.dataDir).toBe("/run/x");
    expect(c.resolvConf).toBe("/etc/resolv.conf");
  });

  it("turns the legacy top-level range into the first range set", () => {
    const c = parse({
      subnet: "10.2.0.0/16",
      rangeStart: "10.2.1.0",
      rangeEnd: "10.2.1.255",
      gateway: "10.2.0.254",
      ranges: [[{ subnet: "10.3.0.0/30" }]],
    });
    expect(shape(c)).toEqual([["10.2.0.0/16 10.2.1.0-10.2.1.255 gw 10.2.0.254"], ["10.3.0.0/30 10.3.0.1-10.3.0.2 gw 10.3.0.1"]]);
  });

  it("accepts several ranges of one family in a set", () => {
    const c = parse({ ranges: [[{ subnet: "10.1.0.0/24" }, { subnet: "10.1.1.0/24", rangeStart: "10.1.1.100" }]] });
    expect(shape(c)[0]).toHaveLength(2);
  });

  it("accepts what the reference accepts: a gateway outside the subnet, stray top-level range fields beside `ranges` (ignored), a route gateway of the other family", () => {
    expect(shape(parse({ subnet: "10.0.1.0/24", gateway: "10.0.0.1" }))).toEqual([["10.0.1.0/24 10.0.1.1-10.0.1.254 gw 10.0.0.1"]]);
    expect(shape(parse({ subnet: "10.0.0.0/24", gateway: "fd00::1" }))).toEqual([["10.0.0.0/24 10.0.0.1-10.0.0.254 gw fd00::1"]]);
    expect(shape(parse({ rangeStart: "10.0.0.5", gateway: "10.0.0.9", ranges: [[{ subnet: "10.0.0.0/24" }]] }))).toEqual([["10.0.0.0/24 10.0.0.1-10.0.0.254 gw 10.0.0.1"]]);
    expect(parse({ subnet: "10.0.0.0/24", routes: [{ dst: "0.0.0.0/0", gw: "fd00::1" }] }).routes).toEqual([{ dst: "0.0.0.0/0", gw: "fd00::1" }]);
  });

  it("reads IPv4-mapped IPv6 addresses as IPv4, as the reference does", () => {
    expect(shape(parse({ subnet: "10.0.0.0/24", rangeStart: "::ffff:10.0.0.5", gateway: "::ffff:10.0.0.9" }))).toEqual([["10.0.0.0/24 10.0.0.5-10.0.0.254 gw 10.0.0.9"]]);
  });

  it("canonicalises routes", () => {
    const c = parse({
      subnet: "10.1.0.0/24",
      routes: [{ dst: "0.0.0.0/0" }, { dst: "FD00::0/8", gw: "fd00:0::1", mtu: 1400 }, { dst: "10.9.0.0/16", gw: "10.1.0.1", extra: 1 }],
    });
    expect(c.routes).toEqual([{ dst: "0.0.0.0/0" }, { dst: "fd00::/8", gw: "fd00::1", mtu: 1400 }, { dst: "10.9.0.0/16", gw: "10.1.0.1" }]);
  });
});

describe("parseHostLocalConfig: errors are code 7 with a clear message", () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    ["no ranges", {}, /no IP ranges specified/],
    ["empty range list", { ranges: [] }, /no IP ranges specified/],
    ["empty range set", { ranges: [[]] }, /\/ranges\/0 must NOT have fewer than 1 items/],
    ["subnet not a string", { ranges: [[{ subnet: 10 }]] }, /\/ranges\/0\/0\/subnet must be string/],
    ["missing subnet", { ranges: [[{ rangeStart: "10.0.0.1" }]] }, /subnet/],
    ["invalid CIDR", { ranges: [[{ subnet: "10.0.0/24" }]] }, /ipam\.ranges\[0\]\[0\]\.subnet: invalid CIDR "10\.0\.0\/24"/],
    ["legacy invalid CIDR", { subnet: "10.0.0.0/33" }, /ipam\.subnet: invalid CIDR "10\.0\.0\.0\/33"/],
    ["host bits", { subnet: "10.0.0.5/24" }, /has host bits set; the network address of a \/24 is 10\.0\.0\.0/],
    ["/31", { subnet: "10.0.0.0/31" }, /network 10\.0\.0\.0\/31 too small to allocate from/],
    ["/32", { subnet: "10.0.0.0/32" }, /too small/],
    ["/127", { subnet: "fd00::/127" }, /too small/],
    ["/128", { subnet: "fd00::/128" }, /too small/],
    ["start outside", { subnet: "10.0.0.0/24", rangeStart: "10.0.1.1" }, /ipam\.rangeStart: 10\.0\.1\.1 is not in subnet 10\.0\.0\.0\/24/],
    ["end outside", { ranges: [[{ subnet: "10.0.0.0/24", rangeEnd: "10.0.1.1" }]] }, /ranges\[0\]\[0\]\.rangeEnd: 10\.0\.1\.1 is not in subnet/],
    ["invalid gateway", { subnet: "10.0.0.0/24", gateway: "10.0.0.300" }, /ipam\.gateway: invalid IP address "10\.0\.0\.300"/],
    ["start after end", { subnet: "10.0.0.0/24", rangeStart: "10.0.0.50", rangeEnd: "10.0.0.40" }, /rangeStart 10\.0\.0\.50 is after rangeEnd 10\.0\.0\.40/],
    ["mixed families", { ranges: [[{ subnet: "10.0.0.0/24" }, { subnet: "fd00::/64" }]] }, /ipam\.ranges\[0\]: a range set must not mix IPv4 and IPv6/],
    [
      "overlap within a set",
      { ranges: [[{ subnet: "10.0.0.0/24" }, { subnet: "10.0.0.0/25" }]] },
      /ipam\.ranges\[0\]: ranges 10\.0\.0\.1-10\.0\.0\.254 and 10\.0\.0\.1-10\.0\.0\.126 overlap/,
    ],
    ["overlap across sets", { ranges: [[{ subnet: "10.0.0.0/24" }], [{ subnet: "fd00::/64" }], [{ subnet: "10.0.0.128/25" }]] }, /^range set 0 overlaps with 2$/],
    ["legacy overlapping a set", { subnet: "10.0.0.0/16", ranges: [[{ subnet: "10.0.5.0/24" }]] }, /^range set 0 overlaps with 1$/],
    ["bad route dst", { subnet: "10.0.0.0/24", routes: [{ dst: "default" }] }, /ipam\.routes\[0\]\.dst: invalid CIDR "default"/],
    ["bad route gw", { subnet: "10.0.0.0/24", routes: [{ dst: "0.0.0.0/0", gw: "x" }] }, /ipam\.routes\[0\]\.gw: invalid IP address "x"/],
    ["wrong type", { type: "dhcp", subnet: "10.0.0.0/24" }, /type must be one of "host-local"/],
  ])("%s", (_what, ipam, message) => {
    const e = cniErrorOf(() => parse(ipam));
    expect(e.code).toBe(7);
    expect(e.message).toMatch(message);
  });

  it("needs an object", () => {
    expect(cniErrorOf(() => parseHostLocalConfig(undefined, "net1")).code).toBe(7);
    expect(cniErrorOf(() => parseHostLocalConfig("host-local", "net1")).code).toBe(7);
  });

  it.each(["", "../etc", "a/b", ".hidden", "-x"])("refuses network name %j", (name) => {
    const e = cniErrorOf(() => parse({ subnet: "10.0.0.0/24" }, name));
    expect(e.code).toBe(7);
    expect(e.message).toMatch(/network name/);
  });

  it("allows ranges that share a subnet but not addresses", () => {
    const c = parse({
      ranges: [
        [{ subnet: "10.0.0.0/24", rangeStart: "10.0.0.10", rangeEnd: "10.0.0.19" }],
        [{ subnet: "10.0.0.0/24", rangeStart: "10.0.0.20", rangeEnd: "10.0.0.29" }],
      ],
    });
    expect(c.ranges).toHaveLength(2);
  });
});

describe("runtimeConfig.ipRanges (the ipRanges capability)", () => {
  const ipam = { type: "host-local", ranges: [[{ subnet: "10.0.0.0/24" }]] };

  it("puts the runtime's range sets first", () => {
    const c = parseHostLocalConfig(ipam, "net1", [[{ subnet: "10.5.0.0/24" }]]);
    expect(shape(c).map((s) => s[0])).toEqual(["10.5.0.0/24 10.5.0.1-10.5.0.254 gw 10.5.0.1", "10.0.0.0/24 10.0.0.1-10.0.0.254 gw 10.0.0.1"]);
  });

  it("may be the only ranges the network has", () => {
    const c = parseHostLocalConfig({ type: "host-local" }, "net1", [[{ subnet: "10.5.0.0/24" }], [{ subnet: "fd00:5::/64" }]]);
    expect(shape(c).map((s) => s[0])).toEqual(["10.5.0.0/24 10.5.0.1-10.5.0.254 gw 10.5.0.1", "fd00:5::/64 fd00:5::1-fd00:5::ffff:ffff:ffff:ffff gw fd00:5::1"]);
    expect(cniErrorOf(() => parseHostLocalConfig({ type: "host-local" }, "net1", [])).message).toMatch(/no IP ranges specified/);
  });

  it("changes nothing when absent", () => {
    expect(parseHostLocalConfig(ipam, "net1", undefined)).toEqual(parseHostLocalConfig(ipam, "net1"));
    expect(parseHostLocalConfig(ipam, "net1", null)).toEqual(parseHostLocalConfig(ipam, "net1"));
  });

  it("checks what it is given", () => {
    expect(cniErrorOf(() => parseHostLocalConfig(ipam, "net1", [[{ subnet: "10.0.0.0/25" }]])).message).toBe("range set 0 overlaps with 1");
    expect(cniErrorOf(() => parseHostLocalConfig(ipam, "net1", [[{ subnet: "x" }]])).message).toMatch(/runtimeConfig\.ipRanges\[0\]\[0\]\.subnet: invalid CIDR/);
    expect(cniErrorOf(() => parseHostLocalConfig(ipam, "net1", "10.0.0.0/8")).code).toBe(7);
  });
});
