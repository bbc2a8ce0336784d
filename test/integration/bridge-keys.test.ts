// Every bridge config key changes what the kernel shows.
import { writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createNetns, deleteNetns, ipJson, inNs, linkNames, nsTry, ping, spoofChecks, uniqueName, weftState } from "../helpers/netns";
import { addPod, bridgeConf, call, delPod, NET, type Node, type Pod, podIP, reservations, useNode, vethsIn } from "../helpers/pods";

interface Link {
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  master?: string;
  linkinfo?: { info_slave_data?: { hairpin?: boolean; isolated?: boolean } };
  addr_info: Array<{ local: string; prefixlen: number; family: string; nodad?: boolean; scope: string }>;
}

// Whether this kernel's bridges can filter VLANs, probed once, in a netns of its own.
let vlanFilteringProbed: boolean | undefined;
function vlanFiltering(): boolean {
  vlanFilteringProbed ??= nsTry(createNetns("probe"), "ip", "link", "add", "vf", "type", "bridge", "vlan_filtering", "1").ok;
  return vlanFilteringProbed;
}

let node: Node;
useNode((n) => (node = n));

function hostLink(name: string): Link {
  return ipJson<Link[]>(node.host, "-d", "addr", "show", "dev", name)[0]!;
}

function podLink(ns: string, name = "eth0"): Link {
  return ipJson<Link[]>(ns, "-d", "addr", "show", "dev", name)[0]!;
}

function routes(ns: string, family: "-4" | "-6"): Array<{ dst: string; gateway?: string }> {
  return ipJson(ns, family, "route", "show");
}

describe("bridge config keys", () => {
  it("bridge names the bridge the pods attach to", () => {
    const pod = addPod(node, bridgeConf(node));
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    const veth = pod.reply.json!["interfaces"][1].name as string;
    expect(hostLink(veth).master).toBe(node.bridge);
    // A bridge ADD creates takes no router advertisements: its routes are the plugin's.
    expect(inNs(node.host, "cat", `/proc/sys/net/ipv6/conf/${node.bridge}/accept_ra`).trim()).toBe("0");
  });

  it("reads keys case-insensitively where only the case differs, as the reference's Go decoder does", () => {
    const conf = {
      CNIVersion: "1.0.0",
      Name: NET,
      Type: "bridge",
      Bridge: node.bridge,
      IsGateway: true,
      IPAM: { Type: "host-local", DataDir: node.dataDir, Ranges: [[{ Subnet: "10.77.0.0/24" }]] },
    };
    const pod = addPod(node, conf);
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    expect(pod.reply.json).toMatchObject({ cniVersion: "1.0.0", ips: [{ address: "10.77.0.2/24", gateway: "10.77.0.1" }] });
    expect(hostLink(node.bridge).addr_info.map((a) => a.local)).toContain("10.77.0.1");
    expect(reservations(node)).toEqual(["10.77.0.2"]);
    expect(delPod(node, pod, conf).code).toBe(0);
    expect(reservations(node)).toEqual([]);
  });

  it("bridge defaults to cni0", () => {
    const { bridge: _, ...conf } = bridgeConf(node);
    const pod = addPod(node, conf);
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    // Created in the test's host netns (the plugin runs there), never the real host's.
    expect(pod.reply.json!["interfaces"][0].name).toBe("cni0");
    expect(hostLink("cni0").addr_info.map((a) => a.local)).toContain("10.77.0.1");
    expect(hostLink(pod.reply.json!["interfaces"][1].name).master).toBe("cni0");
  });

  it("isGateway puts the gateway on the bridge; without it the bridge has no address", () => {
    const gw = addPod(node, bridgeConf(node, { isGateway: true }));
    expect(hostLink(node.bridge).addr_info.filter((a) => a.scope === "global").map((a) => a.local)).toEqual(["10.77.0.1", "fd77::1"]);
    expect(delPod(node, gw, bridgeConf(node)).code).toBe(0);

    const other = { ...node, bridge: uniqueName("br") };
    const plain = addPod(other, bridgeConf(other, { isGateway: false }));
    expect(plain.reply.code, plain.reply.stdout).toBe(0);
    expect(hostLink(other.bridge).addr_info.filter((a) => a.scope === "global")).toEqual([]);
  });

  it("isDefaultGateway gives the pod default routes via the bridge", () => {
    const plain = addPod(node, bridgeConf(node));
    expect(routes(plain.ns, "-4").some((r) => r.dst === "default")).toBe(false);
    const pod = addPod(node, bridgeConf(node, { isDefaultGateway: true }));
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    expect(routes(pod.ns, "-4")).toContainEqual(expect.objectContaining({ dst: "default", gateway: "10.77.0.1" }));
    expect(routes(pod.ns, "-6")).toContainEqual(expect.objectContaining({ dst: "default", gateway: "fd77::1" }));
  });

  it("forceAddress replaces a different bridge address instead of failing", () => {
    inNs(node.host, "ip", "link", "add", node.bridge, "type", "bridge");
    inNs(node.host, "ip", "addr", "add", "10.99.0.1/24", "dev", node.bridge);
    const refused = addPod(node, bridgeConf(node));
    expect(refused.reply.code).not.toBe(0);
    expect(refused.reply.json!["msg"]).toContain("already has an IP address different from 10.77.0.1/24");
    expect(reservations(node)).toEqual([]);

    const forced = addPod(node, bridgeConf(node, { forceAddress: true }));
    expect(forced.reply.code, forced.reply.stdout).toBe(0);
    const v4 = hostLink(node.bridge).addr_info.filter((a) => a.family === "inet").map((a) => a.local);
    expect(v4).toEqual(["10.77.0.1"]);
  });

  it("a bridge made by hand gets its MAC set explicitly with its gateway address, as the reference sets it, so that ports coming and going cannot change it", () => {
    inNs(node.host, "ip", "link", "add", node.bridge, "type", "bridge");
    const assigned = () => inNs(node.host, "cat", `/sys/class/net/${node.bridge}/addr_assign_type`).trim();
    expect(assigned()).not.toBe("3"); // NET_ADDR_SET
    const pod = addPod(node, bridgeConf(node));
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    expect(assigned()).toBe("3");
    expect(pod.reply.json!["interfaces"][0].mac).toBe(hostLink(node.bridge).address);
  });

  it("the host end of the veth accepts no router advertisements, as the reference sets it", () => {
    const pod = addPod(node, bridgeConf(node));
    const veth = pod.reply.json!["interfaces"][1].name as string;
    expect(inNs(node.host, "sysctl", "-n", `net.ipv6.conf.${veth}.accept_ra`).trim()).toBe("0");
  });

  it("mtu sets both ends of the veth pair", () => {
    const pod = addPod(node, bridgeConf(node, { mtu: 1400 }));
    expect(podLink(pod.ns).mtu).toBe(1400);
    expect(hostLink(pod.reply.json!["interfaces"][1].name).mtu).toBe(1400);
  });

  it("hairpinMode turns hairpin on for the pod's bridge port", () => {
    const off = addPod(node, bridgeConf(node));
    const on = addPod(node, bridgeConf(node, { hairpinMode: true }));
    expect(hostLink(off.reply.json!["interfaces"][1].name).linkinfo?.info_slave_data?.hairpin).toBe(false);
    expect(hostLink(on.reply.json!["interfaces"][1].name).linkinfo?.info_slave_data?.hairpin).toBe(true);
  });

  it("portIsolation isolates the pod's port: pods reach the gateway but not each other", () => {
    const conf = bridgeConf(node, { portIsolation: true });
    const [a, b] = [addPod(node, conf), addPod(node, conf)];
    for (const p of [a, b]) expect(p.reply.code, p.reply.stdout).toBe(0);
    expect(hostLink(a.reply.json!["interfaces"][1].name).linkinfo?.info_slave_data?.isolated).toBe(true);
    expect(ping(a.ns, "10.77.0.1")).toBe(true);
    expect(ping(a.ns, podIP(b, 4))).toBe(false);
    const open = addPod(node, bridgeConf(node));
    expect(hostLink(open.reply.json!["interfaces"][1].name).linkinfo?.info_slave_data?.isolated).toBe(false);
    expect(ping(open.ns, podIP(a, 4))).toBe(true);
  });

  it("disableContainerInterface leaves a layer-2 pod's interface down, and is refused with IPAM (leaving nothing), as the reference", () => {
    const { ipam: _, ...l2 } = bridgeConf(node, { disableContainerInterface: true });
    const pod = addPod(node, l2);
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    expect(podLink(pod.ns).flags).not.toContain("UP");
    const refused = addPod(node, bridgeConf(node, { disableContainerInterface: true }));
    expect(refused.reply.json).toMatchObject({ code: 7, msg: "cannot use IPAM when disableContainerInterface is set" });
    expect(linkNames(refused.ns)).toEqual(["lo"]);
    expect(reservations(node)).toEqual([]);
  });

  it("promiscMode puts the bridge in promiscuous mode", () => {
    addPod(node, bridgeConf(node));
    expect(hostLink(node.bridge).flags).not.toContain("PROMISC");
    addPod(node, bridgeConf(node, { promiscMode: true }));
    expect(hostLink(node.bridge).flags).toContain("PROMISC");
  });

  it("refuses hairpinMode with promiscMode at ADD, as the reference does, touching nothing; DEL still works", () => {
    const conf = bridgeConf(node, { hairpinMode: true, promiscMode: true });
    const pod = addPod(node, conf);
    expect(pod.reply.json).toMatchObject({ code: 7, msg: "cannot set hairpin mode and promiscuous mode at the same time" });
    expect(linkNames(pod.ns)).toEqual(["lo"]);
    expect(vethsIn(node.host)).toEqual([]);
    expect(reservations(node)).toEqual([]);
    expect(delPod(node, pod, conf).code).toBe(0);
  });

  it("enabledad controls IPv6 duplicate address detection on the pod's interface", () => {
    const v6 = (ns: string) => podLink(ns).addr_info.find((a) => a.local.startsWith("fd77"))!;
    const linkLocal = (ns: string) => podLink(ns).addr_info.find((a) => a.local.startsWith("fe80"))!;
    const acceptDad = (ns: string) => inNs(ns, "cat", "/proc/sys/net/ipv6/conf/eth0/accept_dad").trim();
    const noDad = addPod(node, bridgeConf(node));
    expect(v6(noDad.ns).nodad).toBe(true);
    // The kernel's own link-local address skips DAD too: usable at once, never tentative.
    expect(acceptDad(noDad.ns)).toBe("0");
    expect(linkLocal(noDad.ns)).not.toHaveProperty("tentative");
    // A netns whose defaults have both DAD switches off: ADD turns them on for the pod.
    const ns = createNetns("pod");
    inNs(ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.default.enhanced_dad=0");
    const { reply } = addPod(node, bridgeConf(node, { enabledad: true }), { ns });
    expect(reply.code, reply.stdout).toBe(0);
    expect(v6(ns).nodad).toBeUndefined();
    expect(acceptDad(ns)).toBe("1");
    expect(inNs(ns, "cat", "/proc/sys/net/ipv6/conf/eth0/enhanced_dad").trim()).toBe("1");
    // ADD waited for DAD, as the reference does: the address is usable when it returns.
    expect(v6(ns)).not.toHaveProperty("tentative");
  });

  it("with enabledad, an IPv6 address another pod already has fails ADD (DAD), leaving nothing behind", () => {
    const first = addPod(node, bridgeConf(node));
    expect(first.reply.code, first.reply.stdout).toBe(0);
    // A second store on the same subnet hands out the same addresses again.
    const other = `${node.dataDir}/other`;
    const dup = addPod(node, bridgeConf(node, { enabledad: true }, { dataDir: other }));
    expect(dup.reply.code).not.toBe(0);
    expect(String(dup.reply.json!["msg"])).toMatch(/^failed to settle addresses for "eth0": address fd77::2\/64 failed duplicate address detection/);
    expect(linkNames(dup.ns)).toEqual(["lo"]);
    expect(vethsIn(node.host)).toEqual([first.reply.json!["interfaces"][1].name]);
    expect(reservations({ ...node, dataDir: other })).toEqual([]);
  });

  it("turns IPv6 on in a pod netns that has it off, for the interface and lo, as the reference does", () => {
    const ns = createNetns("pod");
    const sysctl = (key: string) => inNs(ns, "cat", `/proc/sys/net/ipv6/conf/${key}/disable_ipv6`).trim();
    inNs(ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.lo.disable_ipv6=1");
    const { reply } = addPod(node, bridgeConf(node), { ns });
    expect(reply.code, reply.stdout).toBe(0);
    expect([sysctl("lo"), sysctl("eth0")]).toEqual(["0", "0"]);
    expect(podLink(ns).addr_info.some((a) => a.local.startsWith("fd77:"))).toBe(true);
  });

  it("without an IPAM type the network is layer 2: the pod is wired and up, with no address, gateway or rule", () => {
    for (const ipam of [undefined, {}, { type: "" }]) {
      const other = { ...node, bridge: uniqueName("br") };
      const { ipam: _, ...conf } = bridgeConf(other, { isGateway: true, ipMasq: true });
      const l2 = ipam === undefined ? conf : { ...conf, ipam };
      const pod = addPod(other, l2);
      expect(pod.reply.code, pod.reply.stdout).toBe(0);
      const interfaces = pod.reply.json!["interfaces"] as Array<{ name: string; sandbox?: string }>;
      expect(interfaces.map((i) => i.sandbox)).toEqual([undefined, undefined, pod.path]);
      expect(pod.reply.json!["ips"]).toBeUndefined();
      expect(hostLink(interfaces[1]!.name).master).toBe(other.bridge);
      expect(podLink(pod.ns).flags).toContain("UP");
      // Its sysctls left at the kernel's defaults, as the reference leaves them: DAD on.
      expect(inNs(pod.ns, "sysctl", "-n", "net.ipv6.conf.eth0.accept_dad").trim()).toBe("1");
      expect(podLink(pod.ns).addr_info.filter((a) => a.scope === "global")).toEqual([]);
      expect(hostLink(other.bridge).addr_info.filter((a) => a.scope === "global")).toEqual([]);
      expect(weftState(node.host)).toEqual([]);
      const check = call(other, { plugin: "bridge", command: "CHECK", conf: { ...l2, prevResult: pod.reply.json }, containerId: pod.id, netns: pod.path });
      expect(check.code, check.stdout).toBe(0);
      expect(delPod(other, pod, l2).code).toBe(0);
      expect(linkNames(pod.ns)).toEqual(["lo"]);
    }
  });

  it("macspoofchk lets only the pod's own MAC onto the bridge; DEL removes exactly that pod's check", () => {
    const conf = bridgeConf(node, { macspoofchk: true });
    // Both sets' elements: the port (guarded) and the port with its MAC (allowed).
    const checks = () => spoofChecks(node.host);
    const a = addPod(node, conf);
    const b = addPod(node, conf);
    expect([a.reply.code, b.reply.code], a.reply.stdout + b.reply.stdout).toEqual([0, 0]);
    const entry = (p: Pod) => {
      const [, host, pod] = p.reply.json!["interfaces"] as Array<{ name: string; mac: string }>;
      const key = `${NET}/${p.id}/eth0`;
      return [`guarded ${host!.name} ${key}`, `allowed ${host!.name} ${pod!.mac} ${key}`];
    };
    expect(checks()).toEqual([...entry(a), ...entry(b)].sort());
    expect(ping(a.ns, podIP(b, 4))).toBe(true);

    // A pod that changes its MAC is cut off the bridge; one without the check is not.
    const spoof = (p: Pod, mac: string): boolean => {
      inNs(p.ns, "ip", "link", "set", "eth0", "address", mac);
      for (const ns of [p.ns, b.ns]) inNs(ns, "ip", "neigh", "flush", "all");
      return ping(p.ns, podIP(b, 4), 1);
    };
    expect(spoof(a, "02:00:00:00:0a:99")).toBe(false);
    expect(spoof(addPod(node, bridgeConf(node)), "02:00:00:00:0c:99")).toBe(true);

    expect(delPod(node, a, conf).code).toBe(0);
    expect(checks()).toEqual(entry(b).sort());
    expect(delPod(node, b, conf).code).toBe(0);
    expect(checks()).toEqual([]);
    // Without the key, ADD makes no such table.
    const other = { ...node, bridge: uniqueName("br") };
    nsTry(node.host, "nft", "delete", "table", "bridge", "weft");
    expect(addPod(other, bridgeConf(other)).reply.code).toBe(0);
    expect(nsTry(node.host, "nft", "list", "table", "bridge", "weft").ok).toBe(false);
  });

  it("an ADD that fails after its MAC spoof check takes the check away again", () => {
    // The bridge has another address in the pod's subnet: the gateway step, after the
    // check is in place, refuses it (no forceAddress).
    inNs(node.host, "ip", "link", "add", node.bridge, "type", "bridge");
    inNs(node.host, "ip", "addr", "add", "10.77.0.250/24", "dev", node.bridge);
    const pod = addPod(node, bridgeConf(node, { macspoofchk: true, isGateway: true }));
    expect(pod.reply.json!["msg"]).toContain("already has an IP address different from 10.77.0.1/24");
    expect(spoofChecks(node.host)).toEqual([]);
    expect(vethsIn(node.host)).toEqual([]);
    expect(reservations(node)).toEqual([]);
  });

  it("the config's own dns replaces IPAM's in the result, as in the reference", () => {
    const resolvConf = `${node.dataDir}/resolv.conf`;
    writeFileSync(resolvConf, "nameserver 192.0.2.53\nsearch example.org\n");
    const dns = { nameservers: ["10.96.0.10"], search: ["svc.cluster.local"], options: ["ndots:5"] };
    const own = addPod(node, bridgeConf(node, { dns }, { resolvConf }));
    expect(own.reply.code, own.reply.stdout).toBe(0);
    expect(own.reply.json!["dns"]).toEqual(dns);
    // With none of its keys set, IPAM's stays.
    const ipams = addPod(node, bridgeConf(node, { dns: {} }, { resolvConf }));
    expect(ipams.reply.json!["dns"]).toEqual({ nameservers: ["192.0.2.53"], search: ["example.org"] });
  });

  it("applies the route attributes IPAM gives (priority, mtu, advmss, table, scope), which CHECK then finds", () => {
    const routes = [
      { dst: "192.0.2.0/24", priority: 7, mtu: 1300, advmss: 1260 },
      { dst: "198.51.100.0/24", table: 100 },
      // Above 255: the table goes by RTA_TABLE alone.
      { dst: "203.0.113.0/24", table: 1000 },
      // RT_SCOPE_SITE: a scope a route via a gateway may have.
      { dst: "198.18.0.0/24", scope: 200 },
    ];
    const conf = bridgeConf(node, {}, { routes });
    const pod = addPod(node, conf);
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    const main = ipJson<Array<{ dst: string; metric?: number; metrics?: Array<Record<string, number>> }>>(pod.ns, "-4", "route", "show", "192.0.2.0/24");
    expect(main).toMatchObject([{ dst: "192.0.2.0/24", metric: 7, metrics: [{ mtu: 1300, advmss: 1260 }] }]);
    const inTable = (t: string) => ipJson<Array<{ dst: string }>>(pod.ns, "-4", "route", "show", "table", t).map((r) => r.dst);
    expect([inTable("100"), inTable("1000")]).toEqual([["198.51.100.0/24"], ["203.0.113.0/24"]]);
    const check = call(node, { plugin: "bridge", command: "CHECK", conf: { ...conf, prevResult: pod.reply.json }, containerId: pod.id, netns: pod.path });
    expect(check.code, check.stdout).toBe(0);

    expect(ipJson(pod.ns, "-4", "route", "show", "198.18.0.0/24")).toMatchObject([{ dst: "198.18.0.0/24", scope: "site" }]);
  });

  it("adds routes to one destination via different gateways side by side, as the reference (IPv6 as one multipath route)", () => {
    const routes = [
      { dst: "192.0.2.0/24", gw: "10.77.0.20" },
      { dst: "192.0.2.0/24", gw: "10.77.0.21" },
      { dst: "2001:db8:9::/64", gw: "fd77::20" },
      { dst: "2001:db8:9::/64", gw: "fd77::21" },
    ];
    const conf = bridgeConf(node, {}, { routes });
    const pod = addPod(node, conf);
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    const v4 = ipJson<Array<{ gateway?: string }>>(pod.ns, "-4", "route", "show", "192.0.2.0/24");
    expect(v4.map((r) => r.gateway).sort()).toEqual(["10.77.0.20", "10.77.0.21"]);
    const v6 = ipJson<Array<{ nexthops?: Array<{ gateway: string }> }>>(pod.ns, "-6", "route", "show", "2001:db8:9::/64");
    expect(v6.flatMap((r) => r.nexthops ?? []).map((h) => h.gateway).sort()).toEqual(["fd77::20", "fd77::21"]);
    const check = call(node, { plugin: "bridge", command: "CHECK", conf: { ...conf, prevResult: pod.reply.json }, containerId: pod.id, netns: pod.path });
    expect(check.code, check.stdout).toBe(0);
  });

  it("pod IPv4 addresses carry the subnet's broadcast address, as the reference sets it", () => {
    const pod = addPod(node, bridgeConf(node));
    const v4 = podLink(pod.ns).addr_info.find((a) => a.family === "inet") as { broadcast?: string; prefixlen: number };
    expect(v4.prefixlen).toBe(24);
    expect(v4.broadcast).toMatch(/\.255$/);
    // And it announces itself when it comes up (a reused IP's neighbours learn the new MAC).
    expect(inNs(pod.ns, "cat", "/proc/sys/net/ipv4/conf/eth0/arp_notify").trim()).toBe("1");
  });

  it("vlan puts the pod's port in that VLAN (or fails cleanly where the kernel lacks VLAN filtering)", () => {
    const supported = vlanFiltering();
    const pod = addPod(node, bridgeConf(node, { vlan: 42 }));
    if (supported) {
      expect(pod.reply.code, pod.reply.stdout).toBe(0);
      const port = pod.reply.json!["interfaces"][1].name as string;
      expect(inNs(node.host, "bridge", "vlan", "show", "dev", port)).toMatch(/42 PVID Egress Untagged/);
    } else {
      expect(pod.reply.code).not.toBe(0);
      expect(pod.reply.json!["msg"]).toContain("VLAN filtering");
      expect(reservations(node)).toEqual([]);
      expect(vethsIn(node.host)).toEqual([]);
    }
  });

  it("vlanTrunk makes the pod's port a trunk of those VLANs, tagged (or fails cleanly without VLAN filtering)", () => {
    const supported = vlanFiltering();
    const pod = addPod(node, bridgeConf(node, { vlanTrunk: [{ minID: 100, maxID: 102 }, { id: 200 }], preserveDefaultVlan: false }));
    if (supported) {
      expect(pod.reply.code, pod.reply.stdout).toBe(0);
      const port = pod.reply.json!["interfaces"][1].name as string;
      const shown = JSON.parse(inNs(node.host, "bridge", "-j", "vlan", "show", "dev", port)) as Array<{ vlans: Array<{ vlan: number; vlanEnd?: number; flags?: string[] }> }>;
      const vids = shown[0]!.vlans.flatMap((v) => Array.from({ length: (v.vlanEnd ?? v.vlan) - v.vlan + 1 }, (_, i) => v.vlan + i));
      expect(vids).toEqual([100, 101, 102, 200]);
      expect(shown[0]!.vlans.every((v) => !v.flags?.length)).toBe(true);
    } else {
      expect(pod.reply.json).toMatchObject({ msg: expect.stringContaining('"vlanTrunk" needs bridge VLAN filtering') });
      expect(reservations(node)).toEqual([]);
      expect(vethsIn(node.host)).toEqual([]);
    }
  });

  it("a MAC comes from runtimeConfig.mac, args.cni.mac or CNI_ARGS MAC=", () => {
    const rc = addPod(node, { ...bridgeConf(node), runtimeConfig: { mac: "02:00:00:00:aa:01" } });
    expect(podLink(rc.ns).address).toBe("02:00:00:00:aa:01");
    const args = addPod(node, { ...bridgeConf(node), args: { cni: { mac: "02:00:00:00:aa:02" } } });
    expect(podLink(args.ns).address).toBe("02:00:00:00:aa:02");
    const env = addPod(node, bridgeConf(node), { args: "IgnoreUnknown=1;MAC=02:00:00:00:aa:03" });
    expect(podLink(env.ns).address).toBe("02:00:00:00:aa:03");
    expect(env.reply.json!["interfaces"][2].mac).toBe("02:00:00:00:aa:03");
    const dotted = addPod(node, { ...bridgeConf(node), runtimeConfig: { mac: "0200.0000.aa04" } });
    expect(podLink(dotted.ns).address).toBe("02:00:00:00:aa:04");
  });

  it("a bad MAC fails ADD alone (leaving nothing), an empty one is no request, and neither keeps DEL from cleaning up, as the reference", () => {
    const bad = { ...bridgeConf(node), runtimeConfig: { mac: "not-a-mac" } };
    const failed = addPod(node, bad);
    expect(failed.reply.json).toMatchObject({ code: 7, msg: 'invalid MAC address "not-a-mac"' });
    expect(vethsIn(node.host)).toEqual([]);
    expect(reservations(node)).toEqual([]);
    const pod = addPod(node, bridgeConf(node), { args: "MAC=" });
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    expect(delPod(node, pod, bad).code).toBe(0);
    expect(reservations(node)).toEqual([]);
    expect(vethsIn(node.host)).toEqual([]);
  });
});

describe("host sysctls", () => {
  it("ADD turns bridge-nf-call-iptables and bridge-nf-call-ip6tables on in the host netns", (ctx) => {
    // Per netns since Linux 5.3, and present only while br_netfilter is loaded.
    if (!nsTry(node.host, "test", "-d", "/proc/sys/net/bridge").ok) {
      ctx.skip("/proc/sys/net/bridge missing in the test netns: br_netfilter not loaded or not per-netns on this kernel");
    }
    const keys = ["net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables"];
    const read = () => keys.map((k) => inNs(node.host, "sysctl", "-n", k).trim());
    for (const k of keys) inNs(node.host, "sysctl", "-qw", `${k}=0`);
    expect(read()).toEqual(["0", "0"]);
    const pod = addPod(node, bridgeConf(node));
    expect(pod.reply.code, pod.reply.stdout).toBe(0);
    expect(read()).toEqual(["1", "1"]);
  });
});

describe("ipMasq", () => {
  /** An "outside" network reached from the host over a veth, with no route back to pods. */
  function outside(): { ns: string; ip: string } {
    const ns = createNetns("out");
    const hostEnd = uniqueName("up");
    inNs(node.host, "ip", "link", "add", hostEnd, "type", "veth", "peer", "name", "uplink", "netns", ns);
    inNs(node.host, "ip", "addr", "add", "198.18.0.1/24", "dev", hostEnd);
    inNs(node.host, "ip", "link", "set", hostEnd, "up");
    inNs(ns, "ip", "addr", "add", "198.18.0.2/24", "dev", "uplink");
    inNs(ns, "ip", "link", "set", "uplink", "up");
    return { ns, ip: "198.18.0.2" };
  }

  function ruleset(): string {
    return inNs(node.host, "nft", "list", "ruleset");
  }

  it("lets pods reach the outside only masqueraded, and DEL removes exactly that pod's rules", () => {
    const out = outside();
    const plain = addPod(node, bridgeConf(node, { isDefaultGateway: true }));
    // No route back to 10.77.0.0/24 outside: replies only arrive when the source is rewritten.
    expect(ping(plain.ns, out.ip)).toBe(false);

    const a = addPod(node, bridgeConf(node, { isDefaultGateway: true, ipMasq: true }));
    const b = addPod(node, bridgeConf(node, { isDefaultGateway: true, ipMasq: true }));
    expect(ping(a.ns, out.ip)).toBe(true);
    expect(ping(b.ns, out.ip)).toBe(true);
    // Pod to pod is never NATed: b sees a's own address.
    expect(ping(a.ns, podIP(b, 4))).toBe(true);
    expect(ruleset()).toContain(podIP(a, 4));
    expect(ruleset()).toContain(podIP(b, 4));

    expect(delPod(node, a, bridgeConf(node, { ipMasq: true })).code).toBe(0);
    expect(ruleset()).not.toContain(podIP(a, 4));
    expect(ruleset()).toContain(podIP(b, 4));
    expect(ping(b.ns, out.ip)).toBe(true);
  });

  it("DEL removes the pod's rules also when the netns is already gone", () => {
    const a = addPod(node, bridgeConf(node, { ipMasq: true }));
    expect(ruleset()).toContain(podIP(a, 4));
    deleteNetns(a.ns); // the runtime removed the netns before calling DEL
    expect(delPod(node, a, bridgeConf(node, { ipMasq: true })).code).toBe(0);
    expect(ruleset()).not.toContain(podIP(a, 4));
    expect(reservations(node)).toEqual([]);
  });

  it("DEL with the runtime's prevResult removes the pod's rules; repeated once a newer pod holds the address, it leaves that pod's", () => {
    const conf = bridgeConf(node, { ipMasq: true });
    const a = addPod(node, conf);
    const withPrev = { ...conf, prevResult: a.reply.json };
    expect(delPod(node, a, withPrev).code).toBe(0);
    expect(ruleset()).not.toContain(podIP(a, 4));
    expect(reservations(node)).toEqual([]);

    // A newer pod asks for a's address (as a runtime may), then a's DEL comes again.
    const b = addPod(node, conf, { args: `IP=${podIP(a, 4)}` });
    expect(podIP(b, 4)).toBe(podIP(a, 4));
    expect(delPod(node, a, withPrev).code).toBe(0);
    expect(ruleset()).toContain(podIP(b, 4));
    expect(reservations(node)).toHaveLength(2);
  });

  it("keeps pod traffic flowing when the host's iptables FORWARD policy is DROP", () => {
    inNs(node.host, "iptables", "-P", "FORWARD", "DROP");
    inNs(node.host, "ip6tables", "-P", "FORWARD", "DROP");
    const out = outside();
    const a = addPod(node, bridgeConf(node, { isDefaultGateway: true, ipMasq: true }));
    const b = addPod(node, bridgeConf(node, { isDefaultGateway: true, ipMasq: true }));
    expect(ping(a.ns, podIP(b, 4))).toBe(true);
    expect(ping(a.ns, podIP(b, 6))).toBe(true);
    expect(ping(a.ns, out.ip)).toBe(true);
    // With nft, each pod address is an element of inet weft's sets: pods4/pods6 mark its
    // traffic for iptables' FORWARD accept, masq4/masq6 send it to its masquerade chain.
    const inSets = (p: Pod) => {
      const state = weftState(node.host).map((l) => `${l} `);
      const has = (set: string, ip: string) => state.some((l) => l.startsWith(`${set} ${ip} `));
      return { pods4: has("pods4", podIP(p, 4)), masq4: has("masq4", podIP(p, 4)), pods6: has("pods6", podIP(p, 6)), masq6: has("masq6", podIP(p, 6)) };
    };
    const everywhere = { pods4: true, masq4: true, pods6: true, masq6: true };
    expect(inSets(a)).toEqual(everywhere);
    expect(inSets(b)).toEqual(everywhere);
    expect(delPod(node, a, bridgeConf(node, { ipMasq: true })).code).toBe(0);
    expect(inSets(a)).toEqual({ pods4: false, masq4: false, pods6: false, masq6: false });
    expect(inSets(b)).toEqual(everywhere);
    expect(ping(b.ns, out.ip)).toBe(true);
    expect(inNs(node.host, "iptables-save")).not.toContain(podIP(a, 4));
  });
});
