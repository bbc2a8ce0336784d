// Bad input gets the right CNI error code on stdout and leaves nothing behind.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { BIN_DIR } from "../helpers/cni";
import { baseEnv } from "../../lab/exec";
import { createNetns, linkNames, netnsPath, inNs } from "../helpers/netns";
import { cleanupToolPaths, failingAfter, spyPath } from "../helpers/tool-paths";
import { addPod, bridgeConf, call, type Node, reservations, useNode } from "../helpers/pods";
import { addressOf } from "../../shared/ip";

let node: Node;
useNode((n) => (node = n));
afterAll(cleanupToolPaths);

/** Links in the host netns besides lo (and the bridge, which may legitimately stay). */
function hostLinks(): string[] {
  return linkNames(node.host).filter((n) => n !== "lo" && n !== node.bridge);
}

function nftTables(): string {
  return inNs(node.host, "nft", "list", "ruleset");
}

function expectNothingLeft(podNs?: string): void {
  expect(hostLinks()).toEqual([]);
  expect(reservations(node)).toEqual([]);
  expect(nftTables()).not.toMatch(/10\.77\.0\.\d/);
  if (podNs) {
    const links = linkNames(podNs);
    expect(links).toEqual(["lo"]);
  }
}

function add(conf: Record<string, unknown> | string, env: { containerId?: string; ifname?: string; netns?: string; PATH?: string } = {}) {
  const ns = createNetns("pod");
  const r = call(node, {
    plugin: "bridge",
    command: "ADD",
    conf,
    containerId: env.containerId ?? "ctr1",
    netns: env.netns ?? netnsPath(ns),
    ifname: env.ifname ?? "eth0",
    ...(env.PATH ? { env: { PATH: env.PATH } } : {}),
  });
  return { ns, r };
}

describe("error codes", () => {
  it("malformed JSON is code 6", () => {
    const { ns, r } = add("{not json");
    expect(r.code).not.toBe(0);
    expect(r.json).toMatchObject({ code: 6 });
    expectNothingLeft(ns);
  });

  it("an unknown or missing cniVersion is code 1", () => {
    const unknown = add({ ...bridgeConf(node), cniVersion: "9.9.9" });
    expect(unknown.r.json).toMatchObject({ code: 1 });
    const { cniVersion: _, ...noVersion } = bridgeConf(node);
    const missing = add(noVersion);
    expect(missing.r.json).toMatchObject({ code: 1 });
    expectNothingLeft(unknown.ns);
  });

  it("an invalid CNI_IFNAME or CNI_CONTAINERID is code 4", () => {
    for (const ifname of ["", "a-very-long-interface-name", "eth/0", "eth 0", "."]) {
      const { r } = add(bridgeConf(node), { ifname });
      expect(r.json, ifname).toMatchObject({ code: 4 });
    }
    for (const containerId of ["-leading-dash", "has space", "semi;colon"]) {
      const { r } = add(bridgeConf(node), { containerId });
      expect(r.json, containerId).toMatchObject({ code: 4 });
    }
    expectNothingLeft();
  });

  it("invalid CIDRs and overlapping ranges are code 7", () => {
    const bad = add(bridgeConf(node, {}, { ranges: [[{ subnet: "10.77.0.0/33" }]] }));
    expect(bad.r.json).toMatchObject({ code: 7 });
    const overlap = add(bridgeConf(node, {}, { ranges: [[{ subnet: "10.77.0.0/24" }], [{ subnet: "10.77.0.128/25" }]] }));
    expect(overlap.r.json).toMatchObject({ code: 7 });
    expect(overlap.r.json!["msg"]).toMatch(/overlap/);
    expectNothingLeft(overlap.ns);
  });

  it("an ifname already present in the netns fails cleanly", () => {
    const ns = createNetns("pod");
    inNs(ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1");
    const { r } = add(bridgeConf(node), { netns: netnsPath(ns) });
    expect(r.code).not.toBe(0);
    expect(r.json!["msg"]).toContain('"eth0" already exists');
    expectNothingLeft();
    const links = linkNames(ns);
    expect(links.sort()).toEqual(["eth0", "eth1", "lo"]);
  });

  it("a netns path that does not exist fails cleanly", () => {
    const { r } = add(bridgeConf(node), { netns: "/run/netns/weft-no-such-netns" });
    expect(r.code).not.toBe(0);
    expect(r.json!["msg"]).toContain("/run/netns/weft-no-such-netns");
    expectNothingLeft();
  });

  it("a failure half-way through ADD rolls back the veth, the IP and the NAT rules", () => {
    // The route's gateway is unreachable from the pod, so the kernel refuses it after the
    // veth exists, the IP is reserved and the masquerade rules are in place.
    const conf = bridgeConf(node, { ipMasq: true }, { routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.1" }] });
    const spy = spyPath("rollback");
    const { ns, r } = add(conf, { PATH: `${spy.path}:${process.env["PATH"]}` });
    expect(r.code).not.toBe(0);
    expect(r.json!["msg"]).toContain("198.51.100.0/24");
    // The rules were in place when the route failed: one nft batch added them, a second
    // (the rollback) removed them.
    expect(spy.spawned()).toEqual(["nft -f -", "nft -f -"]);
    expectNothingLeft(ns);
  });

  it("a rollback that fails too is reported, and the runtime's DEL then removes what it left", () => {
    const conf = bridgeConf(node, { ipMasq: true }, { routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.1" }] });
    // nft adds the pod's rules, then fails to remove them.
    const { ns, r } = add(conf, { PATH: `${failingAfter("rollback-fails", "nft", 1)}:${process.env["PATH"]}` });
    expect(r.code).not.toBe(0);
    expect(r.json!["msg"]).toMatch(/198\.51\.100\.0\/24.*\(and rolling back failed: .*nft: failing on purpose/s);
    expect(nftTables()).toMatch(/10\.77\.0\.\d/);
    const del = call(node, { plugin: "bridge", command: "DEL", conf, containerId: "ctr1", netns: netnsPath(ns), ifname: "eth0" });
    expect(del.code, del.stdout).toBe(0);
    expectNothingLeft(ns);
  });
});

describe("a pod that works after errors", () => {
  it("holds only its own reservations once earlier failures rolled back", () => {
    add(bridgeConf(node, { ipMasq: true }, { routes: [{ dst: "198.51.100.0/24", gw: "192.0.2.1" }] }));
    const pod = addPod(node, bridgeConf(node));
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    const mine = (pod.reply.json!["ips"] as Array<{ address: string }>).map((i) => addressOf(i.address));
    expect(reservations(node).sort()).toEqual(mine.sort());
  });
});

describe("a plugin run by hand", () => {
  it("without CNI_COMMAND prints what it is and the CNI versions it speaks on stderr, and succeeds", () => {
    for (const plugin of ["bridge", "host-local", "loopback"]) {
      for (const command of [undefined, ""]) {
        const env = { ...baseEnv(), ...(command === undefined ? {} : { CNI_COMMAND: command }) };
        const r = spawnSync(join(BIN_DIR, plugin), [], { env, input: "", encoding: "utf8" });
        expect(r.status, r.stdout).toBe(0);
        expect(r.stdout).toBe("");
        expect(r.stderr).toBe(`CNI plugin ${plugin} (weft 0.1.0)\nCNI protocol versions supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\n`);
      }
    }
  });
});

describe("a CNI_NETNS that is the plugin's own netns", () => {
  it("is refused with code 8 before anything is touched: ADD, DEL (no host interface deleted, no address released), CHECK, loopback's DEL", () => {
    const own = "/proc/self/ns/net"; // the plugin runs in the test's host netns
    const conf = bridgeConf(node);
    const refused = (r: ReturnType<typeof call>) => {
      expect(r.code).not.toBe(0);
      expect(r.json).toMatchObject({ code: 8, msg: "plugin's netns and netns from CNI_NETNS should not be the same" });
    };
    refused(call(node, { plugin: "bridge", command: "ADD", conf, containerId: "own1", netns: own, ifname: "eth0" }));
    expect(linkNames(node.host)).not.toContain(node.bridge);
    expect(reservations(node)).toEqual([]);

    // A DEL touches nothing either: no host interface of that name is deleted, and a real
    // pod's address stays held (its veth, wherever it really is, still has it).
    const pod = addPod(node, conf);
    expect(reservations(node)).toHaveLength(2);
    // The test's host netns gets an "eth0" of its own, which the DEL must leave alone.
    inNs(node.host, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "hostif1");
    refused(call(node, { plugin: "bridge", command: "DEL", conf, containerId: pod.id, netns: own, ifname: "eth0" }));
    expect(linkNames(node.host)).toContain("eth0");
    expect(reservations(node)).toHaveLength(2);
    refused(call(node, { plugin: "bridge", command: "CHECK", conf: { ...conf, prevResult: pod.reply.json }, containerId: pod.id, netns: own, ifname: "eth0" }));

    inNs(node.host, "ip", "link", "set", "lo", "up");
    const lo = { cniVersion: "1.0.0", name: "lo-test", type: "loopback" };
    refused(call(node, { plugin: "loopback", command: "DEL", conf: lo, containerId: "own1", netns: own, ifname: "lo" }));
    expect(inNs(node.host, "ip", "-br", "link", "show", "lo")).toMatch(/UNKNOWN|UP/);
  });

  it("is allowed where the caller says so with CNI_NETNS_OVERRIDE (1 or true), as the reference's skeleton reads it", () => {
    const lo = { cniVersion: "1.0.0", name: "lo-test", type: "loopback" };
    const own = { plugin: "loopback", conf: lo, containerId: "own1", netns: "/proc/self/ns/net", ifname: "lo" } as const;
    for (const value of ["1", "TRUE"]) {
      inNs(node.host, "ip", "link", "set", "lo", "down");
      const r = call(node, { ...own, command: "ADD", env: { CNI_NETNS_OVERRIDE: value } });
      expect(r.code, r.stdout).toBe(0);
      expect(inNs(node.host, "ip", "-br", "link", "show", "lo")).toMatch(/UNKNOWN|UP/);
    }
    expect(call(node, { ...own, command: "ADD", env: { CNI_NETNS_OVERRIDE: "0" } }).json).toMatchObject({ code: 8 });
  });
});

describe("CHECK without a prevResult", () => {
  it("is an invalid config (7) for bridge, whose CHECK compares the kernel with it", () => {
    const conf = bridgeConf(node);
    const pod = addPod(node, conf);
    const r = call(node, { plugin: "bridge", command: "CHECK", conf, containerId: pod.id, netns: pod.path });
    expect(r.json).toMatchObject({ code: 7, msg: "CHECK requires prevResult" });
  });
});
