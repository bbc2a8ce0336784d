// The bridge plugin, compiled, in real network namespaces: what a user would check with
// `ip`, `ping` and `nft` after the runtime called it.
import { mkdirSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { deleteNetns, ipJson, inNs, linkNames, nsTry, ping, weftState } from "../helpers/netns";
import { addPod, bridgeConf, call, delPod, NET, type Node, podIP, reservations, useNode } from "../helpers/pods";

interface IpAddr {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  master?: string;
  addr_info: Array<{ local: string; prefixlen: number; family: string; nodad?: boolean }>;
}

let node: Node;
useNode((n) => (node = n));

describe("bridge ADD", () => {
  it("connects two pods to each other and to the gateway, IPv4 and IPv6", () => {
    const conf = bridgeConf(node);
    const a = addPod(node, conf);
    const b = addPod(node, conf);
    expect(a.reply.code, a.reply.stdout).toBe(0);
    expect(b.reply.code, b.reply.stdout).toBe(0);

    const r = a.reply.json!;
    expect(r["cniVersion"]).toBe("1.0.0");
    expect(r["interfaces"]).toHaveLength(3);
    expect(r["interfaces"][0].name).toBe(node.bridge);
    expect(r["interfaces"][1].name).toMatch(/^veth[0-9a-f]{8}$/);
    expect(r["interfaces"][2]).toMatchObject({ name: "eth0", sandbox: a.path });
    expect(r["ips"]).toEqual([
      { address: "10.77.0.2/24", gateway: "10.77.0.1", interface: 2 },
      { address: "fd77::2/64", gateway: "fd77::1", interface: 2 },
    ]);

    expect(ping(a.ns, podIP(b, 4))).toBe(true);
    expect(ping(b.ns, podIP(a, 4))).toBe(true);
    expect(ping(a.ns, "10.77.0.1")).toBe(true);
    expect(ping(a.ns, podIP(b, 6))).toBe(true);
    expect(ping(b.ns, "fd77::1")).toBe(true);

    // The host veth sits on the bridge; the bridge holds both gateways.
    const links = ipJson<IpAddr[]>(node.host, "addr", "show");
    const br = links.find((l) => l.ifname === node.bridge)!;
    expect(br.addr_info.map((x) => `${x.local}/${x.prefixlen}`)).toEqual(expect.arrayContaining(["10.77.0.1/24", "fd77::1/64"]));
    const veth = links.find((l) => l.ifname === r["interfaces"][1].name)!;
    expect(veth.master).toBe(node.bridge);
    expect(inNs(node.host, "cat", "/proc/sys/net/ipv4/ip_forward").trim()).toBe("1");
  });

  it("answers in the result format of the config's cniVersion", () => {
    const a = addPod(node, { ...bridgeConf(node), cniVersion: "0.3.1" });
    expect(a.reply.code, a.reply.stdout).toBe(0);
    expect(a.reply.json!["ips"][0]).toEqual({ version: "4", address: "10.77.0.2/24", gateway: "10.77.0.1", interface: 2 });
  });
});

describe("bridge CHECK", () => {
  function check(pod: ReturnType<typeof addPod>, conf: Record<string, unknown>) {
    return call(node, { plugin: "bridge", command: "CHECK", conf: { ...conf, prevResult: pod.reply.json }, containerId: pod.id, netns: pod.path });
  }

  it("passes after ADD and fails once the pod's address is deleted", () => {
    const conf = bridgeConf(node);
    const a = addPod(node, conf);
    const passed = check(a, conf);
    expect(passed.code, passed.stdout).toBe(0);
    inNs(a.ns, "ip", "addr", "del", "10.77.0.2/24", "dev", "eth0");
    const r = check(a, conf);
    expect(r.code).not.toBe(0);
    expect(r.json!["msg"]).toContain("10.77.0.2/24");
  });

  it("fails once a route of the result is deleted", () => {
    const conf = bridgeConf(node, {}, { routes: [{ dst: "192.168.240.0/24" }] });
    const a = addPod(node, conf);
    expect(check(a, conf).code).toBe(0);
    inNs(a.ns, "ip", "route", "del", "192.168.240.0/24");
    const r = check(a, conf);
    expect(r.code).not.toBe(0);
    expect(r.json!["msg"]).toContain("192.168.240.0/24");
  });

  it("fails when the pod's eth0 is no longer the host veth's peer, as the reference checks", () => {
    const conf = bridgeConf(node);
    const a = addPod(node, conf);
    expect(check(a, conf).code).toBe(0);
    // Another veth named eth0, with the same MAC and addresses, in place of the pod's.
    const mac = (a.reply.json!["interfaces"] as Array<{ mac: string }>)[2]!.mac;
    inNs(a.ns, "ip", "link", "set", "eth0", "down");
    inNs(a.ns, "ip", "link", "set", "eth0", "name", "aside0");
    inNs(a.ns, "ip", "link", "add", "eth0", "address", mac, "type", "veth", "peer", "name", "other0");
    for (const ip of ["10.77.0.2/24", "fd77::2/64"]) inNs(a.ns, "ip", "addr", "add", ip, "dev", "eth0", "nodad");
    inNs(a.ns, "ip", "link", "set", "eth0", "up");
    const r = check(a, conf);
    expect(r.code).not.toBe(0);
    expect(r.json!["msg"]).toMatch(/^interface eth0 in .* is not the peer of host veth veth[0-9a-f]{8}$/);
  });

  it("fails when the bridge's promiscuous mode is not what promiscMode says, either way, as the reference", () => {
    const promisc = bridgeConf(node, { promiscMode: true });
    const a = addPod(node, promisc);
    const ok = check(a, promisc);
    expect(ok.code, ok.stdout).toBe(0);
    const plain = bridgeConf(node);
    const b = addPod(node, plain);
    const r = check(b, plain);
    expect(r.code).not.toBe(0);
    expect(r.json!["msg"]).toBe(`bridge ${node.bridge} is in promiscuous mode, but the config's promiscMode is false`);
    inNs(node.host, "ip", "link", "set", node.bridge, "promisc", "off");
    expect(check(b, plain).code).toBe(0);
    expect(check(a, promisc).json!["msg"]).toBe(`bridge ${node.bridge} is not in promiscuous mode, but the config's promiscMode is true`);
  });

  it("fails when the prevResult names no host veth, as the reference", () => {
    const conf = bridgeConf(node);
    const a = addPod(node, conf);
    const interfaces = (a.reply.json!["interfaces"] as Array<{ name: string }>).filter((_, i) => i !== 1);
    const prev = { ...a.reply.json!, interfaces, ips: [{ ...a.reply.json!["ips"][0], interface: 1 }] };
    const r = call(node, { plugin: "bridge", command: "CHECK", conf: { ...conf, prevResult: prev }, containerId: a.id, netns: a.path });
    expect(r.json).toMatchObject({ msg: `prevResult has no host veth for bridge ${node.bridge}` });
  });

  it("fails when the reservation is gone", () => {
    const conf = bridgeConf(node);
    const a = addPod(node, conf);
    expect(delPod(node, a, { ...conf, ipam: { ...(conf["ipam"] as object) } }).code).toBe(0);
    expect(check(a, conf).code).not.toBe(0);
  });
});

describe("bridge DEL", () => {
  it("finds and removes the rules of a pod whose ifname a rule comment cannot carry (a digest names them)", () => {
    const conf = bridgeConf(node, { ipMasq: true });
    const ifname = 'eth"é';
    const pod = addPod(node, conf, { ifname });
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    expect(inNs(node.host, "nft", "list", "table", "inet", "weft")).toMatch(/comment "weft-h:[0-9a-f]{40}"/);
    expect(delPod(node, pod, conf, ifname).code).toBe(0);
    expect(weftState(node.host)).toEqual([]);
    expect(reservations(node)).toEqual([]);
  });

  it("is idempotent: twice, without ADD, and after the netns is gone, releasing the IP", async () => {
    const conf = bridgeConf(node);
    const a = addPod(node, conf);
    expect(reservations(node)).toHaveLength(2);
    expect(delPod(node, a, conf).code).toBe(0);
    expect(reservations(node)).toEqual([]);
    expect(delPod(node, a, conf).code).toBe(0);
    expect(nsTry(a.ns, "ip", "link", "show", "eth0").ok).toBe(false);

    // DEL for a container that never had ADD
    const never = call(node, { plugin: "bridge", command: "DEL", conf, containerId: "never-added", netns: a.path });
    expect(never.code, never.stdout).toBe(0);

    // DEL after the netns is gone (containerd's `ctr run --rm` order), and without netns at all
    const b = addPod(node, conf);
    expect(reservations(node)).toHaveLength(2);
    deleteNetns(b.ns);
    expect(delPod(node, b, conf).code).toBe(0);
    expect(reservations(node)).toEqual([]);
    const noNetns = call(node, { plugin: "bridge", command: "DEL", conf, containerId: b.id });
    expect(noNetns.code, noNetns.stdout).toBe(0);
    // Only the bridge is left on the host: DEL never removes it (as the reference). The
    // kernel dismantles a deleted netns, and the veth end in it, asynchronously.
    const links = () => linkNames(node.host).sort();
    await expect.poll(links, { timeout: 30_000 }).toEqual([node.bridge, "lo"].sort());
  });

  it("keeps the address while the pod's interface cannot be deleted, and says why", () => {
    const conf = bridgeConf(node);
    const a = addPod(node, conf);
    // In the pod, the loopback device takes the name eth0: the kernel refuses to delete it.
    inNs(a.ns, "ip", "link", "set", "eth0", "down");
    inNs(a.ns, "ip", "link", "set", "eth0", "name", "eth9");
    inNs(a.ns, "ip", "link", "set", "lo", "name", "eth0");
    const r = delPod(node, a, conf);
    expect(r.code, r.stdout).toBe(1);
    expect(r.json?.["msg"]).toMatch(/EOPNOTSUPP/);
    expect(reservations(node)).toHaveLength(2);

    // Once the name is the veth's again, the runtime's next DEL takes both.
    inNs(a.ns, "ip", "link", "set", "eth0", "name", "lo");
    inNs(a.ns, "ip", "link", "set", "eth9", "name", "eth0");
    expect(delPod(node, a, conf).code).toBe(0);
    expect(reservations(node)).toEqual([]);
    expect(nsTry(a.ns, "ip", "link", "show", "eth0").ok).toBe(false);
  });

  it("still deletes the veth when the IP cannot be released, and says why", () => {
    const conf = bridgeConf(node);
    const a = addPod(node, conf);
    // host-local's lock file replaced by a directory: the release cannot take the lock.
    const lock = join(node.dataDir, NET, "lock");
    rmSync(lock);
    mkdirSync(lock);
    const r = delPod(node, a, conf);
    expect(r.code, r.stdout).toBe(1);
    expect(r.json?.["code"], r.stdout).toBe(5); // I/O, as host-local says it
    expect(r.json?.["msg"]).toContain(lock);
    expect(nsTry(a.ns, "ip", "link", "show", "eth0").ok).toBe(false);
    expect(reservations(node)).toHaveLength(2);

    // The runtime retries the DEL: the release goes through once the lock can be taken.
    rmdirSync(lock);
    expect(delPod(node, a, conf).code).toBe(0);
    expect(reservations(node)).toEqual([]);
  });
});
