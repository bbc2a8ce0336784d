// shared/firewall against the real kernel, inside network namespaces (see
// test/helpers/netns-firewall.ts for the topology): masquerade, forward accept under a DROP
// policy (and none without one), idempotence and concurrency, the processes ADD and DEL
// spawn, the iptables fallback, and failures.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { overlayBatch, overlayChains } from "../../agent/overlay-rules";
import { OVERLAY_FORWARD_CHAIN, OVERLAY_TABLE } from "../../shared/firewall/common";
import { FORWARD_HOOK } from "../../shared/firewall/nft";
import { addressOf } from "../../shared/ip";
import {
  type Bench,
  bundleFirewall,
  call,
  callAsync,
  cleanupAll,
  createBench,
  destroyBench,
  leftovers,
  ping,
  sh,
  sources,
  scratchDir,
} from "../helpers/netns-firewall";
import { weftState } from "../helpers/netns";
import { cleanupToolPaths, noNftPath, pathWith, slowPath, spyPath } from "../helpers/tool-paths";

const pod = (name: string, last: number, masquerade = true) => ({
  network: "testnet",
  containerId: `ctr-${name}`,
  ifname: "eth0",
  cidrs: [`10.1.0.${last}/24`, `fd00:1::${last}/64`],
  masquerade,
});
const A = pod("a", 2);
const B = pod("b", 3);
const ref = (p: ReturnType<typeof pod>, withIps = true) => ({
  network: p.network,
  containerId: p.containerId,
  ifname: p.ifname,
  ...(withIps ? { ips: p.cidrs.map(addressOf) } : {}),
});

function ok(r: { ok: boolean; error: string }): void {
  expect(r.error).toBe("");
  expect(r.ok).toBe(true);
}

/** The elements and chains of one pod; `marked`: its pods4/pods6 elements (FORWARD drops). */
const stateOf = (p: ReturnType<typeof pod>, marked: boolean): string[] => {
  const key = `"${p.network}/${p.containerId}/${p.ifname}"`;
  const [v4, v6] = p.cidrs.map(addressOf) as [string, string];
  const masq = p.masquerade
    ? [
        `chain masq-${v4}`,
        `chain masq-${v6.replaceAll(":", "-")}`,
        `masq4 ${v4} ${key} : jump masq-${v4}`,
        `masq6 ${v6} ${key} : jump masq-${v6.replaceAll(":", "-")}`,
      ]
    : [];
  return [...(marked ? [`pods4 ${v4} ${key}`, `pods6 ${v6} ${key}`] : []), ...masq];
};
/** State under an ACCEPT FORWARD policy: masquerade only. */
const expected = (...pods: Array<ReturnType<typeof pod>>): string[] => pods.flatMap((p) => stateOf(p, false)).sort();
/** State under a DROP FORWARD policy: marks too. */
const expectedMarked = (...pods: Array<ReturnType<typeof pod>>): string[] => pods.flatMap((p) => stateOf(p, true)).sort();
const dropForward = (ns: string): string => sh(ns, "iptables -P FORWARD DROP && ip6tables -P FORWARD DROP");

const OUT4 = "192.0.2.2";
const OUT6 = "2001:db8::2";

let b: Bench;
beforeAll(bundleFirewall);
beforeEach(() => {
  b = createBench();
});
afterEach(() => destroyBench(b));
afterAll(() => {
  cleanupAll();
  cleanupToolPaths();
  expect(leftovers()).toEqual([]);
});

describe("nftables backend", () => {
  test("masquerades pod→outside only, keeps pod→pod sources, removes exactly one pod", () => {
    ok(call(b.host, "addPodRules", A));
    ok(call(b.host, "addPodRules", B));
    expect(weftState(b.host)).toEqual(expected(A, B));

    expect(ping(b.podA, OUT4)).toBe(true);
    expect(ping(b.podA, OUT6)).toBe(true);
    expect(sources(b.outside)).toEqual(["192.0.2.1", "2001:db8::1"]); // the host's address
    expect(ping(b.podA, "10.1.0.3")).toBe(true);
    expect(ping(b.podA, "fd00:1::3")).toBe(true);
    expect(sources(b.podB)).toEqual(["10.1.0.2", "fd00:1::2"]); // same subnet: not NATed

    ok(call(b.host, "removePodRules", ref(A)));
    expect(weftState(b.host)).toEqual(expected(B));
    expect(ping(b.podA, OUT4)).toBe(true); // outside routes back to the pods itself
    expect(ping(b.podB, OUT4)).toBe(true);
    expect(sources(b.outside)).toEqual(["10.1.0.2", "192.0.2.1"]); // A no longer NATed, B still

    ok(call(b.host, "removePodRules", ref(B, false))); // no IPs: found by container ID + ifname
    expect(weftState(b.host)).toEqual([]);
  });

  test("GC removes the elements of the network's pods it is not told to keep, and nothing else", () => {
    const other = { ...pod("o", 9), network: "othernet" };
    for (const p of [A, B, other]) ok(call(b.host, "addPodRules", p));
    ok(call(b.host, "removeStalePodRules", { network: A.network, valid: [`${A.network}/${A.containerId}/${A.ifname}`] }));
    expect(weftState(b.host)).toEqual(expected(A, other));
  });

  test("ADD and DEL are idempotent, also concurrently; ipMasq off leaves no NAT", async () => {
    dropForward(b.host); // so that there are marks as well as masquerade
    const listing = (): string => sh(b.host, "nft list table inet weft");
    ok(call(b.host, "addPodRules", A));
    const once = listing();
    ok(call(b.host, "addPodRules", A));
    expect(listing()).toBe(once);

    // An address still held by a container whose DEL never came: a new pod takes it over,
    // and the old container's DEL no longer finds it, by container ID or by the addresses
    // its prevResult names.
    const old = { ...A, containerId: "ctr-old" };
    ok(call(b.host, "addPodRules", old));
    ok(call(b.host, "addPodRules", A));
    expect(weftState(b.host)).toEqual(expectedMarked(A));
    ok(call(b.host, "removePodRules", ref(old, false)));
    ok(call(b.host, "removePodRules", ref(old)));
    expect(weftState(b.host)).toEqual(expectedMarked(A));

    const many = [10, 11, 12, 13, 14, 15].map((n) => pod(`n${n}`, n, n % 2 === 0));
    for (const r of await Promise.all(many.map((p) => callAsync(b.host, "addPodRules", p)))) ok(r);
    expect(weftState(b.host)).toEqual(expectedMarked(A, ...many));
    for (const r of await Promise.all(many.map((p) => callAsync(b.host, "removePodRules", ref(p, false))))) ok(r);
    expect(weftState(b.host)).toEqual(expectedMarked(A));

    ok(call(b.host, "addPodRules", { ...A, masquerade: false }));
    expect(weftState(b.host)).toEqual(expectedMarked(pod("a", 2, false)));
    expect(ping(b.podA, OUT4)).toBe(true);
    expect(sources(b.outside)).toEqual(["10.1.0.2"]);

    ok(call(b.host, "removePodRules", ref(A)));
    ok(call(b.host, "removePodRules", ref(A)));
    ok(call(b.host, "removePodRules", ref(A, false)));
    expect(weftState(b.host)).toEqual([]);
    ok(call(b.podB, "removePodRules", ref(A, false))); // a netns where weft never ran
    ok(call(b.podB, "removePodRules", ref(A)));
  });

  test("under an ACCEPT policy with ipMasq off, ADD and DEL spawn nothing and make no table", () => {
    const spy = spyPath("accept");
    const [a, bb] = [pod("a", 2, false), pod("b", 3, false)];
    ok(call(b.host, "addPodRules", a, spy.path));
    ok(call(b.host, "addPodRules", bb, spy.path));
    expect(spy.spawned()).toEqual([]);
    expect(sh(b.host, "nft list ruleset")).not.toContain("weft");
    for (const dst of [OUT4, OUT6, "10.1.0.3", "fd00:1::3"]) expect(ping(b.podA, dst), dst).toBe(true);
    expect(sources(b.outside)).toEqual(["10.1.0.2", "fd00:1::2"]); // not NATed

    ok(call(b.host, "removePodRules", ref(a), spy.path));
    ok(call(b.host, "removePodRules", ref(bb, false), spy.path));
    expect(spy.spawned()).toEqual([]);

    // The same where iptables-nft has filter tables, with policy ACCEPT.
    sh(b.host, "iptables -P FORWARD ACCEPT && ip6tables -P FORWARD ACCEPT");
    ok(call(b.host, "addPodRules", a, spy.path));
    ok(call(b.host, "removePodRules", ref(a), spy.path));
    expect(spy.spawned()).toEqual([]);
    expect(sh(b.host, "nft list ruleset")).not.toContain("weft");
  });

  test("spawns one nft per ADD and per DEL in the steady state, none for what does not exist", () => {
    const spy = spyPath("steady");
    const tools = (): string[] => spy.spawned().map((l) => l.split(" ")[0]!);
    // ipMasq on, ACCEPT policy: NAT only.
    ok(call(b.host, "addPodRules", A, spy.path));
    expect(tools()).toEqual(["nft"]); // first ADD: builds the table
    ok(call(b.host, "addPodRules", B, spy.path));
    expect(tools()).toEqual(["nft"]);
    ok(call(b.host, "removePodRules", ref(B), spy.path));
    expect(tools()).toEqual(["nft"]);
    ok(call(b.host, "removePodRules", ref(B), spy.path));
    ok(call(b.host, "removePodRules", ref(B, false), spy.path));
    expect(tools()).toEqual([]);
    expect(weftState(b.host)).toEqual(expected(A));

    // ipMasq off, DROP policy: marks, and the iptables rule once.
    dropForward(b.host);
    const [a, bb] = [pod("a", 2, false), pod("b", 3, false)];
    ok(call(b.host, "addPodRules", a, spy.path)); // replaces A's NAT by marks
    expect(tools()).toEqual(["iptables-nft", "ip6tables-nft", "nft"]);
    ok(call(b.host, "addPodRules", bb, spy.path));
    expect(tools()).toEqual(["nft"]);
    expect(weftState(b.host)).toEqual(expectedMarked(a, bb));
    for (const dst of [OUT4, OUT6, "10.1.0.3", "fd00:1::3"]) expect(ping(b.podA, dst), dst).toBe(true);
    expect(sources(b.outside)).toEqual(["10.1.0.2", "fd00:1::2"]); // not NATed

    // Someone flushes iptables' FORWARD: the next ADD that needs the rule puts it back.
    sh(b.host, "iptables -F FORWARD");
    expect(ping(b.podB, OUT4)).toBe(false);
    ok(call(b.host, "addPodRules", a, spy.path)); // a retried ADD: its elements exist, so a full batch
    expect(tools()).toEqual(["iptables-nft", "nft"]);
    expect(ping(b.podB, OUT4)).toBe(true);

    ok(call(b.host, "removePodRules", ref(a), spy.path));
    expect(tools()).toEqual(["nft"]);
    expect(weftState(b.host)).toEqual(expectedMarked(bb));
    expect(ping(b.podA, OUT4)).toBe(false);
    expect(ping(b.podB, OUT6)).toBe(true);
    ok(call(b.host, "removePodRules", ref(a), spy.path));
    expect(tools()).toEqual([]);

    // Back to ACCEPT: an ADD drops the address's marks left from before.
    sh(b.host, "iptables -P FORWARD ACCEPT && ip6tables -P FORWARD ACCEPT");
    ok(call(b.host, "addPodRules", bb, spy.path));
    expect(tools()).toEqual(["nft"]);
    expect(weftState(b.host)).toEqual([]);
    ok(call(b.host, "removePodRules", ref(bb, false), spy.path));
    expect(tools()).toEqual([]);
  });

  test("keeps pods reachable under an iptables-nft FORWARD DROP policy, until DEL", async () => {
    dropForward(b.host);
    expect(ping(b.podA, OUT4)).toBe(false);

    ok(call(b.host, "addPodRules", A));
    ok(call(b.host, "addPodRules", B));
    ok(call(b.host, "addPodRules", A));
    for (const dst of [OUT4, OUT6, "10.1.0.3", "fd00:1::3"]) expect(ping(b.podA, dst), dst).toBe(true);
    const rule =
      "-m mark --mark 0x1000/0x1000 " +
      '-m comment --comment "weft: accept traffic of pods marked by nft table inet weft" -j ACCEPT';
    const weftRules = (tool: string): string[] =>
      sh(b.host, `${tool} -S FORWARD`).split("\n").filter((l) => l.includes("weft"));
    for (const tool of ["iptables", "ip6tables"]) expect(weftRules(tool)).toEqual([`-A FORWARD ${rule}`]);
    sh(b.host, `iptables -A FORWARD ${rule}`); // as two concurrent first ADDs might leave it
    ok(call(b.host, "addPodRules", B));
    expect(weftRules("iptables")).toEqual([`-A FORWARD ${rule}`]);
    // ADDs at once, each seeing two copies, leave one: never none (deleting a copy each did).
    // Every iptables tool waits first, so all of them have counted before any changes a rule.
    sh(b.host, `iptables -A FORWARD ${rule}`);
    const tools = ["iptables", "ip6tables"].flatMap((t) => [t, `${t}-nft`, `${t}-restore`, `${t}-nft-restore`]);
    const slow = `${slowPath("slow-iptables", tools, 0.3)}:${process.env["PATH"]}`;
    const many = [4, 5, 6, 7].map((n) => pod(`m${n}`, n));
    for (const r of await Promise.all(many.map((p) => callAsync(b.host, "addPodRules", p, slow)))) ok(r);
    expect(weftRules("iptables")).toEqual([`-A FORWARD ${rule}`]);
    for (const p of many) ok(call(b.host, "removePodRules", ref(p)));

    ok(call(b.host, "removePodRules", ref(A)));
    expect(ping(b.podA, OUT4)).toBe(false);
    expect(ping(b.podA, OUT6)).toBe(false);
    expect(ping(b.podB, OUT4)).toBe(true);
    expect(ping(b.podB, OUT6)).toBe(true);
  });

  test("under DROP, a pod whose IPv4 traffic a given chain marks (the weft agent's) gets only its IPv6 mark", () => {
    const a = { ...pod("a", 2, false), markedBy: { table: OVERLAY_TABLE, chain: OVERLAY_FORWARD_CHAIN } };
    dropForward(b.host);
    // The chain exists but marks nothing yet (an agent that has not caught up): no help.
    sh(b.host, `nft add table ip ${OVERLAY_TABLE} && nft add chain ip ${OVERLAY_TABLE} ${OVERLAY_FORWARD_CHAIN} '{ ${FORWARD_HOOK} }'`);
    ok(call(b.host, "addPodRules", a));
    expect(weftState(b.host)).toEqual(expectedMarked(pod("a", 2, false)));
    ok(call(b.host, "removePodRules", ref(A)));

    // The agent's own table, marking a given CIDR.
    const marking = (cidr: string) => {
      const batch = overlayBatch(overlayChains({ podCIDR: cidr, clusterCIDR: cidr, masquerade: false, forwardMarks: true }));
      sh(b.host, `nft -f - <<'EOF'\n${batch}EOF`);
    };
    // Rules for another subnet (say, the node's pod CIDR before a change), or a wider one
    // that starts with the same address: no help either.
    for (const cidr of ["10.9.0.0/24", "10.1.0.0/16"]) {
      marking(cidr);
      ok(call(b.host, "addPodRules", a));
      expect(weftState(b.host), cidr).toEqual(expectedMarked(pod("a", 2, false)));
      ok(call(b.host, "removePodRules", ref(A)));
    }

    // Once it marks the pod subnet, an ADD adds the IPv6 mark alone, and the pod still gets out.
    marking("10.1.0.0/24");
    ok(call(b.host, "addPodRules", a));
    expect(weftState(b.host)).toEqual(expectedMarked(pod("a", 2, false)).filter((l) => !l.startsWith("pods4")));
    for (const dst of [OUT4, OUT6]) expect(ping(b.podA, dst), dst).toBe(true);
    ok(call(b.host, "removePodRules", ref(A)));
    expect(weftState(b.host)).toEqual([]);
  });

  test("keeps pods reachable under an iptables-legacy FORWARD DROP policy, reading the chain without a process", () => {
    const spy = spyPath("legacy");
    // Each process as its tool and what it did to a chain (-S lists, -I inserts, -D deletes).
    const tools = (): string[] =>
      spy.spawned().map((l) => {
        const [tool, ...args] = l.split(" ");
        return [tool, ...args.filter((x) => ["-S", "-I", "-D"].includes(x))].join(" ");
      });
    const [a, bb] = [pod("a", 2, false), pod("b", 3, false)];
    const weftRules = (tool: string): string[] =>
      sh(b.host, `${tool} -S FORWARD`).split("\n").filter((l) => l.includes("weft"));
    const rule =
      "-m mark --mark 0x1000/0x1000 " +
      '-m comment --comment "weft: accept traffic of pods marked by nft table inet weft" -j ACCEPT';

    // Legacy tables under ACCEPT (the kernel lists them once used): nothing to do, nothing spawned.
    sh(b.host, "iptables-legacy -P FORWARD ACCEPT && ip6tables-legacy -P FORWARD ACCEPT");
    ok(call(b.host, "addPodRules", a, spy.path));
    expect(tools()).toEqual([]);
    ok(call(b.host, "removePodRules", ref(a), spy.path));

    sh(b.host, "iptables-legacy -P FORWARD DROP && ip6tables-legacy -P FORWARD DROP");
    expect(ping(b.podA, OUT4)).toBe(false);
    // The first ADD inserts the rule in each family (no listing first), and marks the pod.
    ok(call(b.host, "addPodRules", a, spy.path));
    expect(tools()).toEqual(["iptables-legacy -I", "ip6tables-legacy -I", "nft"]);
    for (const dst of [OUT4, OUT6]) expect(ping(b.podA, dst), dst).toBe(true);
    for (const tool of ["iptables-legacy", "ip6tables-legacy"]) expect(weftRules(tool)).toEqual([`-A FORWARD ${rule}`]);
    expect(sh(b.host, "iptables-nft -S FORWARD")).not.toContain("weft"); // the host's backend only

    // Later ADDs find the rule: no iptables process at all.
    ok(call(b.host, "addPodRules", bb, spy.path));
    expect(tools()).toEqual(["nft"]);
    // A second copy, as two first ADDs at once may both insert one, is removed; the rule
    // stays first, and the rules of others stay where they are.
    sh(b.host, `iptables-legacy -A FORWARD -s 192.0.2.9 -j ACCEPT && iptables-legacy -I FORWARD 1 ${rule}`);
    ok(call(b.host, "addPodRules", bb, spy.path));
    expect(tools()).toEqual(["iptables-legacy-restore", "nft"]);
    const forward = (): string[] => sh(b.host, "iptables-legacy -S FORWARD").trim().split("\n");
    expect(forward()).toEqual(["-P FORWARD DROP", `-A FORWARD ${rule}`, "-A FORWARD -s 192.0.2.9/32 -j ACCEPT"]);


    ok(call(b.host, "removePodRules", ref(a, false), spy.path));
    expect(ping(b.podA, OUT4)).toBe(false);
    expect(ping(b.podB, OUT4)).toBe(true);

    // With no iptables tool on PATH the rule cannot be written or a copy removed, but rules
    // already there count: a pod is marked in each family that has one, here IPv6 alone
    // (two copies, both left), not IPv4 (none).
    sh(b.host, `iptables-legacy -D FORWARD ${rule} && ip6tables-legacy -I FORWARD 1 ${rule}`);
    const c = pod("c", 4, false);
    ok(call(b.host, "addPodRules", c, pathWith("legacy-no-tool", { nft: "/usr/sbin/nft" })));
    expect(weftState(b.host).filter((l) => l.includes("ctr-c"))).toEqual(expectedMarked(c).filter((l) => l.startsWith("pods6")));
    expect(weftRules("ip6tables-legacy")).toEqual([`-A FORWARD ${rule}`, `-A FORWARD ${rule}`]);
    ok(call(b.host, "removePodRules", ref(c)));
  });

  test("a failing batch reports nft's error and leaves nothing of the pod", () => {
    // A base chain squatting on the name of A's masquerade chain: masquerade is refused there.
    sh(b.host, "nft add table inet weft");
    sh(b.host, "nft add chain inet weft masq-10.1.0.2 '{ type filter hook input priority 0; }'");
    const r = call(b.host, "addPodRules", A);
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/adding nftables rules for pod testnet\/ctr-a\/eth0: nft -f - failed: .*Error:/s);
    expect(weftState(b.host).filter((l) => !l.startsWith("chain "))).toEqual([]);

    for (const cidr of ["10.1.0.300/24", "10.1.0.3"]) {
      const bad = call(b.host, "addPodRules", { ...B, cidrs: [cidr] });
      expect(bad.error).toContain(`"${cidr}" is not an address with a prefix`);
    }
  });
});

describe("iptables fallback (no nft on PATH)", () => {
  let paths = 0;
  const noNft = (): string => noNftPath(`nonft${paths++}`);
  /** Rules and user chains, without counters. */
  const builtin = /^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) /;
  const saved = (tool: string): string[] =>
    sh(b.host, `${tool}-save`)
      .split("\n")
      .filter((l) => l.startsWith("-A") || (l.startsWith(":") && !builtin.test(l)))
      .map((l) => l.replace(/ \[\d+:\d+\]$/, ""));

  test("creates and removes exactly one pod's chains and rules", () => {
    const path = noNft();
    sh(b.host, "iptables -P FORWARD DROP && ip6tables -P FORWARD DROP");
    ok(call(b.host, "addPodRules", A, path));
    ok(call(b.host, "addPodRules", B, path));
    expect(weftState(b.host)).toEqual([]); // nothing in nftables' own tables
    const chains = (tool: string): string[] => saved(tool).filter((l) => /^:WEFT-[0-9A-F]{20} -$/.test(l));
    expect(chains("iptables")).toHaveLength(2);
    expect(chains("ip6tables")).toHaveLength(2);
    const a4 = saved("iptables").filter((l) => l.includes("testnet/ctr-a/eth0"));
    expect(a4.filter((l) => l.startsWith("-A POSTROUTING -s 10.1.0.2/32 "))).toHaveLength(1);
    expect(a4.filter((l) => l.includes("-j MASQUERADE"))).toHaveLength(1);
    expect(a4.filter((l) => l.startsWith("-A WEFT-FORWARD "))).toHaveLength(2);

    expect(ping(b.podA, OUT4)).toBe(true);
    expect(ping(b.podA, OUT6)).toBe(true);
    expect(sources(b.outside)).toEqual(["192.0.2.1", "2001:db8::1"]);
    expect(ping(b.podA, "10.1.0.3")).toBe(true);
    expect(sources(b.podB)).toEqual(["10.1.0.2"]);
    // Nor does a broad MASQUERADE after ours in the same (iptables-nft) nat table: the pod's
    // chain ACCEPTs its subnet, as the reference's does, which ends that table's POSTROUTING.
    const broad = "-t nat -A POSTROUTING -s 10.1.0.0/24 -j MASQUERADE";
    sh(b.host, `iptables-nft ${broad}`);
    expect(ping(b.podA, "10.1.0.3")).toBe(true);
    expect(sources(b.podB)).toEqual(["10.1.0.2"]);
    sh(b.host, `iptables-nft ${broad.replace("-A", "-D")}`);

    const before = [saved("iptables"), saved("ip6tables")];
    ok(call(b.host, "addPodRules", A, path));
    expect([saved("iptables"), saved("ip6tables")]).toEqual(before);

    ok(call(b.host, "removePodRules", ref(A, false), path));
    for (const tool of ["iptables", "ip6tables"]) {
      expect(saved(tool).filter((l) => l.includes("ctr-a"))).toEqual([]);
      expect(chains(tool)).toHaveLength(1);
      expect(saved(tool).filter((l) => l.includes("ctr-b"))).toHaveLength(6);
    }
    expect(ping(b.podA, OUT4)).toBe(false);
    expect(ping(b.podB, OUT4)).toBe(true);
    expect(ping(b.podB, OUT6)).toBe(true);

    ok(call(b.host, "removePodRules", ref(A), path));
    ok(call(b.host, "removePodRules", ref(B), path));
    for (const tool of ["iptables", "ip6tables"]) {
      expect(saved(tool)).toEqual([":WEFT-FORWARD -", "-A FORWARD -j WEFT-FORWARD"]);
    }
  });

  test("GC removes the rules of the network's pods it is not told to keep, and nothing else, in one save and restore per family", () => {
    const path = noNft();
    const spy = spyPath("gc-spy", { without: ["nft"] });
    const c = pod("c", 4);
    for (const p of [A, B, c]) ok(call(b.host, "addPodRules", p, path));
    const other = { ...B, network: "othernet", containerId: "ctr-o", cidrs: ["10.1.0.9/24", "fd00:1::9/64"] };
    ok(call(b.host, "addPodRules", other, path));
    // Someone else's rule whose comment looks like one of the network's pods (kube-proxy's
    // "default/kubernetes:https" on a network named "default"): never weft's to remove.
    const foreign = '-A OUTPUT -m comment --comment "testnet/kubernetes:https" -j RETURN';
    sh(b.host, `iptables-nft -t nat ${foreign}`);
    ok(call(b.host, "removeStalePodRules", { network: A.network, valid: [`${A.network}/${A.containerId}/${A.ifname}`] }, spy.path));
    expect(spy.spawned().map((l) => l.split(" ")[0])).toEqual(["iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore"]);
    // One snapshot per family after the GC, then read as needed.
    const after = { iptables: saved("iptables"), ip6tables: saved("ip6tables") };
    expect(after.iptables).toContain(foreign);
    const mine = (tool: keyof typeof after, id: string) => after[tool].filter((l) => l.includes(id));
    const natChains = (tool: keyof typeof after) => after[tool].filter((l) => /^:WEFT-[0-9A-F]{20} -$/.test(l));
    for (const tool of ["iptables", "ip6tables"] as const) {
      expect(mine(tool, "ctr-b"), tool).toEqual([]);
      expect(mine(tool, "ctr-c"), tool).toEqual([]);
      expect(natChains(tool), tool).toHaveLength(2); // ctr-a's and the other network's
      expect(mine(tool, "ctr-a").length, tool).toBeGreaterThan(0);
      expect(mine(tool, "ctr-o").length, tool).toBeGreaterThan(0); // another network's: kept
    }
    for (const p of [A, other]) ok(call(b.host, "removePodRules", ref(p), path));
  });

  test("a failing iptables-restore is reported and undone", () => {
    // Applies the nat part of an ADD, then fails: the filter part never lands.
    const dir = scratchDir();
    const fake = `${dir}/fake-restore`;
    sh(
      null,
      `cat > ${fake} <<'EOF'
#!/bin/sh
PATH=/usr/sbin:/usr/bin:/bin
script=$(cat)
case "$script" in
  *"-j ACCEPT"*) printf '%s\\n' "$script" | sed '/^\\*filter/,$d' | /usr/sbin/iptables-nft-restore "$@"; echo "simulated failure" >&2; exit 1 ;;
esac
printf '%s\\n' "$script" | /usr/sbin/iptables-nft-restore "$@"
EOF
chmod +x ${fake}`,
    );
    const path = pathWith("failing", { "iptables-save": "/usr/sbin/iptables-nft-save", "iptables-restore": fake });
    const v4only = { ...A, cidrs: [A.cidrs[0]!] };
    const r = call(b.host, "addPodRules", v4only, path);
    expect(r.ok).toBe(false);
    expect(r.error).toContain("adding iptables rules for pod testnet/ctr-a/eth0: iptables-restore failed: simulated");
    expect(saved("iptables").filter((l) => l.includes("WEFT-") && !l.includes("WEFT-FORWARD"))).toEqual([]);
  });

  test("a dual-stack ADD failing in its IPv6 half takes its IPv4 rules away, and says that the IPv6 clean-up failed too", () => {
    const path = noNftPath("v6-save-fails", { "ip6tables-save": "/bin/false" });
    const r = call(b.host, "addPodRules", A, path);
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/ip6tables-save failed.*\(and rolling back failed: .*ip6tables-save failed/s);
    expect(saved("iptables").filter((l) => l.includes("ctr-a") || (l.includes("WEFT-") && !l.includes("WEFT-FORWARD")))).toEqual([]);
  });
});
