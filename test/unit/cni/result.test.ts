import { describe, expect, it } from "vitest";
import { CniError } from "../../../shared/cni/errors";
import { cniErrorOf } from "../../helpers/cni-error";
import { convertResult, parsePrevResult, type Result } from "../../../shared/cni/result";

const full: Result = {
  cniVersion: "1.1.0",
  interfaces: [
    { name: "cni0", mac: "aa:bb:cc:dd:ee:01", mtu: 1450 },
    { name: "eth0", mac: "aa:bb:cc:dd:ee:02", sandbox: "/var/run/netns/x", socketPath: "/s", pciID: "0000:00:01.0" },
  ],
  ips: [
    { address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 1 },
    { address: "fd00::5/64", interface: 1 },
  ],
  routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1", mtu: 1400, advmss: 1360, priority: 10, table: 0, scope: 0 }],
  dns: { nameservers: ["10.96.0.10"], search: [] },
};

describe("convertResult", () => {
  it("0.3.x/0.4.0: adds ips[].version, drops the 1.x interface fields and keeps the route attributes (one route type for all)", () => {
    for (const v of ["0.3.0", "0.3.1", "0.4.0"]) {
      expect(convertResult(full, v)).toEqual({
        cniVersion: v,
        interfaces: [
          { name: "cni0", mac: "aa:bb:cc:dd:ee:01" },
          { name: "eth0", mac: "aa:bb:cc:dd:ee:02", sandbox: "/var/run/netns/x" },
        ],
        ips: [
          { version: "4", address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 1 },
          { version: "6", address: "fd00::5/64", interface: 1 },
        ],
        routes: full.routes,
        dns: { nameservers: ["10.96.0.10"] },
      });
    }
  });

  it("1.0.0: no ips[].version; interfaces and routes as in 1.1.0 (the reference's types are one)", () => {
    const out = convertResult(full, "1.0.0") as Record<string, unknown>;
    expect(out["ips"]).toEqual([
      { address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 1 },
      { address: "fd00::5/64", interface: 1 },
    ]);
    expect(out["routes"]).toEqual(full.routes);
    expect(out["interfaces"]).toEqual(full.interfaces);
  });

  it("1.1.0: keeps every field, including zero table/scope", () => {
    const out = convertResult(full, "1.1.0") as Record<string, unknown>;
    expect(out["interfaces"]).toEqual(full.interfaces);
    expect(out["routes"]).toEqual(full.routes);
    expect(out["ips"]).toEqual(full.ips);
  });

  it("always prints dns, as the reference plugins do, and omits empty lists", () => {
    expect(convertResult({ cniVersion: "1.0.0" }, "1.0.0")).toEqual({ cniVersion: "1.0.0", dns: {} });
    expect(Object.keys(convertResult({ cniVersion: "1.0.0", ips: [{ address: "10.0.0.2/8" }] }, "0.4.0"))).toEqual(["cniVersion", "ips", "dns"]);
  });

  it("refuses an unsupported target version", () => {
    expect(() => convertResult(full, "0.2.0")).toThrow(CniError);
  });
});

describe("parsePrevResult", () => {
  it("reads a 0.4.0-shaped result, ignoring ips[].version", () => {
    const raw = {
      cniVersion: "0.4.0",
      interfaces: [{ name: "eth0", sandbox: "/ns" }],
      ips: [{ version: "4", address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 0 }],
      routes: [{ dst: "0.0.0.0/0" }],
      dns: {},
    };
    expect(parsePrevResult(raw, "1.0.0")).toEqual({
      cniVersion: "1.0.0",
      interfaces: [{ name: "eth0", sandbox: "/ns" }],
      ips: [{ address: "10.1.0.5/24", gateway: "10.1.0.1", interface: 0 }],
      routes: [{ dst: "0.0.0.0/0" }],
      dns: {},
    });
  });

  it("round-trips a 1.1.0 result through convertResult", () => {
    const out = convertResult(full, "1.1.0");
    expect(convertResult(parsePrevResult(out, "1.1.0"), "1.1.0")).toEqual(out);
  });

  it("treats null like absent", () => {
    expect(parsePrevResult({ ips: null, dns: null, interfaces: [{ name: "a", mac: null }] }, "1.0.0")).toEqual({
      cniVersion: "1.0.0",
      interfaces: [{ name: "a" }],
    });
  });

  it("reads an empty gateway as none, as Go's net.IP does", () => {
    const raw = { ips: [{ address: "10.1.0.2/24", gateway: "" }], routes: [{ dst: "0.0.0.0/0", gw: "" }] };
    expect(parsePrevResult(raw, "1.0.0")).toEqual({ cniVersion: "1.0.0", ips: [{ address: "10.1.0.2/24" }], routes: [{ dst: "0.0.0.0/0" }] });
  });

  it("rejects bad shapes with code 6 and a path", () => {
    const cases: [unknown, RegExp][] = [
      ["x", /prevResult must be an object/],
      [{ ips: "x" }, /ips must be an array/],
      [{ ips: [{ address: "10.1.0.5" }] }, /ips\[0\]\.address/],
      [{ ips: [{ address: "10.1.0.5/33" }] }, /ips\[0\]\.address/],
      [{ ips: [{ address: "10.1.0.5/24", gateway: "nope" }] }, /ips\[0\]\.gateway/],
      [{ ips: [{ address: "10.1.0.5/24", interface: -1 }] }, /ips\[0\]\.interface/],
      [{ interfaces: [{ mac: "x" }] }, /interfaces\[0\]\.name is required/],
      [{ routes: [{ gw: "10.0.0.1" }] }, /routes\[0\]\.dst is required/],
      [{ dns: { nameservers: [1] } }, /dns\.nameservers\[0\]/],
    ];
    for (const [raw, msg] of cases) {
      const e = cniErrorOf(() => parsePrevResult(raw, "1.0.0"));
      expect(e.code).toBe(6);
      expect(e.message).toMatch(msg);
    }
  });

  it("rejects a prevResult in an unsupported version (code 1)", () => {
    expect(() => parsePrevResult({ cniVersion: "0.2.0" }, "1.0.0")).toThrow(/unsupported cniVersion/);
  });
});
