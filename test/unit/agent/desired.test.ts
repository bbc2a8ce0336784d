import { describe, expect, it } from "vitest";
import { computeDesired, normaliseCIDR, selfNode, vtepMac, WEFT_RTPROT, type SelfNode } from "../../../agent/desired";
import type { NodeSnapshot } from "../../../agent/types";

const snap = (nodes: NodeSnapshot["nodes"]): NodeSnapshot => ({ clusterCIDR: "10.244.0.0/16", nodes });
const n1 = { name: "n1", ip: "192.168.50.11", podCIDR: "10.244.1.0/24" };
const n2 = { name: "n2", ip: "192.168.50.12", podCIDR: "10.244.2.0/24" };
const n3 = { name: "n3", ip: "192.168.60.13", podCIDR: "10.244.3.0/24" };

const cluster = normaliseCIDR("10.244.0.0/16")!;

function self(s: NodeSnapshot, name = "n1"): SelfNode {
  const r = selfNode(s, name, cluster);
  if (!r.ok) throw new Error(r.reason);
  return r.self;
}

describe("vtepMac", () => {
  it("is 0e:fe followed by the node address bytes", () => {
    expect(vtepMac("192.168.50.11")).toBe("0e:fe:c0:a8:32:0b");
    expect(vtepMac("10.0.0.1")).toBe("0e:fe:0a:00:00:01");
  });

  it("is a locally administered unicast address", () => {
    const first = parseInt(vtepMac("172.18.0.3").slice(0, 2), 16);
    expect(first & 0x01).toBe(0); // not multicast
    expect(first & 0x02).toBe(2); // locally administered
  });

  it("refuses IPv6 and garbage", () => {
    expect(() => vtepMac("fd00::1")).toThrow(/IPv4/);
    expect(() => vtepMac("nope")).toThrow();
  });
});

describe("selfNode", () => {
  it("derives the device address and MAC from our node", () => {
    expect(self(snap([n1, n2]))).toEqual({
      name: "n1",
      nodeIP: "192.168.50.11",
      podCIDR: "10.244.1.0/24",
      vtepMac: "0e:fe:c0:a8:32:0b",
      address: "10.244.1.0/32",
    });
  });

  it("normalises a pod CIDR written with host bits", () => {
    expect(self(snap([{ ...n1, podCIDR: "10.244.1.7/24" }])).podCIDR).toBe("10.244.1.0/24");
  });

  it("says why it must wait", () => {
    expect(selfNode(snap([n2]), "n1", cluster)).toEqual({ ok: false, reason: 'node "n1" is not in the node list yet' });
    expect(selfNode(snap([{ ...n1, podCIDR: "" }]), "n1", cluster)).toMatchObject({ ok: false, reason: expect.stringMatching(/no pod CIDR/) });
    expect(selfNode(snap([{ ...n1, ip: "" }]), "n1", cluster)).toMatchObject({ ok: false, reason: expect.stringMatching(/no node address/) });
    expect(selfNode(snap([{ ...n1, ip: "fd00::1" }]), "n1", cluster)).toMatchObject({ ok: false, reason: expect.stringMatching(/not IPv4/) });
    expect(selfNode(snap([{ ...n1, podCIDR: "10.9.1.0/24" }]), "n1", cluster)).toEqual({
      ok: false,
      reason: 'node "n1": pod CIDR 10.9.1.0/24 is outside the cluster CIDR 10.244.0.0/16',
    });
  });
});

describe("computeDesired", () => {
  it("gives every remote node a neighbor, an FDB entry and an onlink route through the tunnel", () => {
    const s = snap([n3, n1, n2]);
    const d = computeDesired(s, self(s), { cluster, directRouting: "never", underlay: "192.168.50.11/24" });
    expect(d.peers).toEqual([
      { name: "n2", nodeIP: "192.168.50.12", podCIDR: "10.244.2.0/24", mode: "vxlan" },
      { name: "n3", nodeIP: "192.168.60.13", podCIDR: "10.244.3.0/24", mode: "vxlan" },
    ]);
    expect(d.neighbors).toEqual([
      { ip: "10.244.2.0", mac: "0e:fe:c0:a8:32:0c" },
      { ip: "10.244.3.0", mac: "0e:fe:c0:a8:3c:0d" },
    ]);
    expect(d.fdb).toEqual([
      { mac: "0e:fe:c0:a8:32:0c", dst: "192.168.50.12" },
      { mac: "0e:fe:c0:a8:3c:0d", dst: "192.168.60.13" },
    ]);
    expect(d.routes).toEqual([
      { dst: "10.244.2.0/24", gw: "10.244.2.0", dev: "overlay", onlink: true },
      { dst: "10.244.3.0/24", gw: "10.244.3.0", dev: "overlay", onlink: true },
    ]);
    expect(d.skipped).toEqual([]);
  });

  it("with direct routing auto, routes same-subnet peers via their node address, others through the tunnel", () => {
    const s = snap([n1, n2, n3]);
    const d = computeDesired(s, self(s), { cluster, directRouting: "auto", underlay: "192.168.50.11/24" });
    expect(d.peers.map((p) => [p.name, p.mode])).toEqual([
      ["n2", "direct"],
      ["n3", "vxlan"],
    ]);
    expect(d.routes).toEqual([
      { dst: "10.244.2.0/24", gw: "192.168.50.12", dev: "underlay", onlink: false },
      { dst: "10.244.3.0/24", gw: "10.244.3.0", dev: "overlay", onlink: true },
    ]);
    // A directly routed peer needs no tunnel state.
    expect(d.neighbors.map((n) => n.ip)).toEqual(["10.244.3.0"]);
    expect(d.fdb.map((f) => f.dst)).toEqual(["192.168.60.13"]);
  });

  it("never routes directly when the underlay subnet is unknown or the mode is never", () => {
    const s = snap([n1, n2]);
    expect(computeDesired(s, self(s), { cluster, directRouting: "auto" }).peers[0]!.mode).toBe("vxlan");
    expect(computeDesired(s, self(s), { cluster, directRouting: "never", underlay: "192.168.50.11/24" }).peers[0]!.mode).toBe("vxlan");
  });

  it("skips nodes without an address or pod CIDR, outside the cluster, or that would hijack another's traffic", () => {
    const s = snap([
      n1,
      n2,
      { name: "a-nocidr", ip: "192.168.50.20", podCIDR: "" },
      { name: "b-noip", ip: "", podCIDR: "10.244.20.0/24" },
      { name: "c-overlaps-self", ip: "192.168.50.21", podCIDR: "10.244.1.128/25" },
      { name: "d-wide", ip: "192.168.50.22", podCIDR: "10.244.0.0/16" },
      { name: "e-same-ip-as-self", ip: "192.168.50.11", podCIDR: "10.244.30.0/24" },
      { name: "z-overlaps-n2", ip: "192.168.50.23", podCIDR: "10.244.2.0/24" },
      { name: "v6", ip: "192.168.50.24", podCIDR: "fd00:10::/64" },
      { name: "y-outside", ip: "192.168.50.25", podCIDR: "10.9.0.0/24" },
    ]);
    const d = computeDesired(s, self(s), { cluster, directRouting: "never" });
    // Sorted by name, n2 is accepted before z-overlaps-n2 claims its CIDR.
    expect(d.peers.map((p) => p.name)).toEqual(["n2"]);
    expect(Object.fromEntries(d.skipped.map((x) => [x.name, x.reason]))).toEqual({
      "a-nocidr": "no pod CIDR yet",
      "b-noip": "no node address yet",
      "c-overlaps-self": "pod CIDR 10.244.1.128/25 overlaps 10.244.1.0/24",
      "d-wide": "pod CIDR 10.244.0.0/16 overlaps 10.244.1.0/24",
      "e-same-ip-as-self": "node address 192.168.50.11 is used by another node",
      "z-overlaps-n2": "pod CIDR 10.244.2.0/24 overlaps 10.244.2.0/24",
      v6: 'pod CIDR "fd00:10::/64" is not an IPv4 CIDR',
      "y-outside": "pod CIDR 10.9.0.0/24 is outside the cluster CIDR 10.244.0.0/16",
    });
  });

  it("settles a conflict for the older node, whatever the names: a node added later cannot take a running one's pods", () => {
    const b = { ...n2, created: "2026-01-01T00:00:00.000Z" };
    const rogue = { name: "0000", ip: "192.168.50.66", podCIDR: "10.244.2.0/24", created: "2026-11-29T10:00:00.000Z" };
    const twin = { name: "00twin", ip: "192.168.50.12", podCIDR: "10.244.9.0/24", created: "2026-11-29T10:00:00.000Z" };
    const s = snap([n1, rogue, twin, b, { ...n3, created: "2026-02-01T00:00:00.000Z" }]);
    const d = computeDesired(s, self(s), { cluster, directRouting: "never" });
    expect(d.peers.map((p) => p.name)).toEqual(["n2", "n3"]); // still by name
    expect(d.routes.map((r) => r.dst).sort()).toEqual(["10.244.2.0/24", "10.244.3.0/24"]);
    expect(d.fdb.find((f) => f.mac === vtepMac("192.168.50.12"))?.dst).toBe("192.168.50.12");
    expect(Object.fromEntries(d.skipped.map((x) => [x.name, x.reason]))).toEqual({
      "0000": "pod CIDR 10.244.2.0/24 overlaps 10.244.2.0/24",
      "00twin": "node address 192.168.50.12 is used by another node",
    });
  });

  it("a lone node wants nothing but its own device", () => {
    const s = snap([n1]);
    const d = computeDesired(s, self(s), { cluster, directRouting: "auto" });
    expect([d.peers, d.routes, d.neighbors, d.fdb]).toEqual([[], [], [], []]);
  });
});

describe("helpers", () => {
  it("normaliseCIDR clears host bits and refuses IPv6", () => {
    const n = normaliseCIDR("10.244.3.9/24")!;
    expect([n.prefix, Number(n.ip.value & 0xffn)]).toEqual([24, 0]);
    expect(normaliseCIDR("fd00::/64")).toBeNull();
    expect(normaliseCIDR("10.0.0.0")).toBeNull();
  });

  it("the route protocol is weft's own", () => {
    expect(WEFT_RTPROT).toBe(0x57);
  });
});
