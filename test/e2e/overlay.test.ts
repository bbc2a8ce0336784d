// The overlay end to end: three node namespaces on an underlay switch, `weft agent
// --nodes FILE` on each, pods created through the weft CNI plugin. Asserts what a user
// checks: reachability (ICMP and TCP), VXLAN on the wire, full-size packets unfragmented,
// masquerade to the outside only, pod source IPs kept between pods, traffic kept across an
// agent restart, and convergence when nodes come and go.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Cluster, routeDsts, type PodSpec } from "../../lab/cluster";
import { inNs, run, tryInNs } from "../../lab/exec";
import { requireBuild } from "../helpers/cni";
import { mtuOf, nsTry } from "../helpers/netns";

const PREFIX = `we${process.pid.toString(36)}`;

function ping(from: PodSpec | string, ip: string, count = 1): boolean {
  const ns = typeof from === "string" ? from : from.ns;
  return tryInNs(ns, "ping", "-c", String(count), "-W", "2", "-i", "0.2", ip);
}

/** A TCP listener in every pod (`nc -lk`, it stays for the next connection); returns its stopper. */
function listenAll(pods: PodSpec[], port: number): () => void {
  const servers = pods.map((p) => spawn("ip", ["netns", "exec", p.ns, "nc", "-lk", String(port)], { stdio: "ignore" }));
  const stop = () => {
    for (const s of servers) s.kill("SIGKILL");
  };
  for (const p of pods) {
    for (let i = 0; !tryInNs(p.ns, "nc", "-z", "-w", "1", "127.0.0.1", String(port)); i++) {
      if (i === 40) {
        stop();
        throw new Error(`no listener on port ${port} in ${p.ns}`);
      }
      spawnSync("sleep", ["0.05"]);
    }
  }
  return stop;
}

/** An nft counter on the underlay switch for VXLAN's UDP port. */
function countVxlanOnWire(c: Cluster): void {
  nft(c.switchNs, "table bridge wire {\n counter vxlan { }\n chain forward {\n type filter hook forward priority 0;\n udp dport 4789 counter name vxlan\n }\n}\n");
}

function nft(ns: string, script: string): void {
  const r = spawnSync("ip", ["netns", "exec", ns, "nft", "-f", "-"], { input: script, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`nft in ${ns}: ${r.stderr}`);
}

/** Packets counted by an nft counter on the underlay switch for VXLAN's UDP port. */
function vxlanPacketsOnWire(c: Cluster): number {
  const out = inNs(c.switchNs, "nft", "-j", "list", "counter", "bridge", "wire", "vxlan");
  const doc = JSON.parse(out) as { nftables: Array<{ counter?: { packets: number } }> };
  return doc.nftables.find((x) => x.counter)?.counter?.packets ?? 0;
}

/** Records the source addresses of ICMP echo requests arriving in `ns` from now on. */
function recordSources(ns: string): () => string[] {
  nft(ns, "add table ip seen\ndelete table ip seen\ntable ip seen {\n set src { type ipv4_addr; flags dynamic; }\n chain input {\n type filter hook input priority 0;\n icmp type echo-request add @src { ip saddr }\n }\n}\n");
  return () => {
    const out = inNs(ns, "nft", "-j", "list", "set", "ip", "seen", "src");
    const doc = JSON.parse(out) as { nftables: Array<{ set?: { elem?: string[] } }> };
    return doc.nftables.find((x) => x.set)?.set?.elem ?? [];
  };
}

/** IP fragmentation counters of netns `ns` (/proc/net/snmp is per namespace). */
function fragCounters(ns: string): Record<string, number> {
  const [keys, values] = inNs(ns, "cat", "/proc/net/snmp")
    .split("\n")
    .filter((l) => l.startsWith("Ip:"))
    .map((l) => l.trim().split(/\s+/));
  const out: Record<string, number> = {};
  for (const k of ["FragCreates", "FragOKs", "FragFails", "ReasmReqds"]) out[k] = Number(values![keys!.indexOf(k)]);
  return out;
}


/** A Node script run inside netns `ns`; `lines()`: what it printed so far (stdout and stderr). */
function nodeIn(ns: string, script: string, ...args: string[]): { child: ChildProcess; lines: () => string[] } {
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", script, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  return { child, lines: () => out.split("\n").filter(Boolean) };
}

/** Echoes every byte back on the connection it came in on. */
const ECHO_SERVER = `require("node:net").createServer((s) => s.pipe(s)).listen(+process.argv[1], () => console.log("listening"));`;

/**
 * One connection, never re-made: a counter sent every 50 ms, each echo checked to be the
 * next one. Any mismatch, error or close is printed and ends the process.
 */
const ECHO_CLIENT = `
const s = require("node:net").connect(+process.argv[2], process.argv[1], () => {
  s.setNoDelay(true);
  console.log("connected from port " + s.localPort);
  let sent = 0;
  setInterval(() => s.write(sent++ + "\\n"), 50);
});
let want = 0, buf = "";
s.on("data", (d) => {
  buf += d;
  for (let i; (i = buf.indexOf("\\n")) >= 0; buf = buf.slice(i + 1)) {
    const n = Number(buf.slice(0, i));
    if (n !== want) { console.log("bad echo " + n + ", wanted " + want); process.exit(1); }
    console.log("echo " + want++);
  }
});
s.on("error", (e) => { console.log("error " + e.message); process.exit(2); });
s.on("close", () => { console.log("closed"); process.exit(3); });
`;

describe("overlay across three nodes (VXLAN)", () => {
  let c: Cluster;
  let pods: PodSpec[];

  beforeAll(async () => {
    requireBuild();
    c = new Cluster({ prefix: PREFIX, nodes: 3, workDir: mkdtempSync(join(tmpdir(), "weft-e2e-")), resyncSeconds: 2 });
    await c.up();
    countVxlanOnWire(c);
    pods = c.nodes.flatMap((n, i) => [c.addPod(n, `p${i}a`), c.addPod(n, `p${i}b`)]);
  });

  afterAll(() => c?.destroy());

  it("every pod reaches every other pod over ICMP and TCP", () => {
    const failures: string[] = [];
    for (const a of pods) {
      for (const b of pods) {
        if (a === b) continue;
        if (!ping(a, b.ip)) failures.push(`icmp ${a.name}->${b.name}`);
      }
    }
    const stop = listenAll(pods, 7000);
    try {
      for (const a of pods) {
        for (const b of pods) {
          if (a !== b && !tryInNs(a.ns, "nc", "-z", "-w", "2", b.ip, "7000")) failures.push(`tcp ${a.name}->${b.name}`);
        }
      }
    } finally {
      stop();
    }
    expect(failures).toEqual([]);
  });

  it("carries cross-node traffic as VXLAN on the underlay, same-node traffic not", () => {
    const before = vxlanPacketsOnWire(c);
    expect(ping(pods[0]!, pods[1]!.ip, 3)).toBe(true); // same node
    expect(vxlanPacketsOnWire(c)).toBe(before);
    expect(ping(pods[0]!, pods[2]!.ip, 3)).toBe(true); // node1 -> node2
    expect(vxlanPacketsOnWire(c)).toBeGreaterThanOrEqual(before + 6);
  });

  it("keeps the pod source IP between pods, masquerades traffic leaving the cluster", () => {
    const seen = recordSources(pods[2]!.ns);
    expect(ping(pods[0]!, pods[2]!.ip)).toBe(true);
    expect(seen()).toEqual([pods[0]!.ip]);

    // An outside host on the underlay, with no route back to the pod network: replies
    // can only arrive if the node rewrote the source to its own address.
    const outside = `${PREFIX}-out`;
    run("ip", "netns", "add", outside);
    try {
      inNs(c.switchNs, "ip", "link", "add", "portout", "type", "veth", "peer", "name", "eth0", "netns", outside);
      inNs(c.switchNs, "ip", "link", "set", "portout", "master", "sw", "up");
      inNs(outside, "ip", "addr", "add", "192.168.77.200/24", "dev", "eth0");
      inNs(outside, "ip", "link", "set", "eth0", "up");
      const outSeen = recordSources(outside);
      expect(ping(pods[0]!, "192.168.77.200")).toBe(true);
      expect(outSeen()).toEqual([c.nodes[0]!.ip]);

      // Routed to the pod network through node1, the outside reaches node1's pods as itself
      // and node2's as node1 (its overlay address), so their replies return through node1.
      inNs(outside, "ip", "route", "add", c.clusterCIDR, "via", c.nodes[0]!.ip);
      const local = recordSources(pods[1]!.ns);
      const remote = recordSources(pods[2]!.ns);
      expect(ping(outside, pods[1]!.ip)).toBe(true);
      expect(ping(outside, pods[2]!.ip)).toBe(true);
      expect(local()).toEqual(["192.168.77.200"]);
      expect(remote()).toEqual([c.nodes[0]!.podCIDR.split("/")[0]]);
    } finally {
      spawnSync("ip", ["netns", "del", outside]);
    }
  });

  it("repairs a VXLAN device deleted by hand within one resync", async () => {
    const n1 = c.nodes[0]!;
    const log = () => readFileSync(join(n1.stateDir, "agent.log"), "utf8");
    const adds = () => log().split("link add weft.1").length - 1;
    const before = adds();
    // The agent hears of the deletion at once (link notifications), so no window in which
    // to see traffic fail can be counted on: its log shows the device made again instead.
    inNs(n1.ns, "ip", "link", "del", "weft.1");
    await c.waitRoutes(n1, c.nodes.slice(1), 5_000);
    await expect.poll(adds, { timeout: 5_000 }).toBe(before + 1);
    expect(ping(pods[0]!, pods[2]!.ip)).toBe(true);
  });

  it("no fragmentation at the default MTU: a pod's largest DF ping crosses nodes whole, one byte more fails locally", () => {
    const [from, to] = [pods[0]!, pods[2]!]; // node1 -> node2
    const [n1, n2] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0]];
    // The pod's MTU is the overlay's, and the overlay's leaves VXLAN's 50 bytes on the uplink.
    const mtu = mtuOf(from.ns, "eth0");
    expect(mtu).toBe(mtuOf(n1.ns, "eth0") - 50);
    expect(mtuOf(n1.ns, "weft.1")).toBe(mtu);
    const where = [n1.ns, n2.ns, from.ns, to.ns];
    const before = where.map(fragCounters);
    const sized = (df: "do" | "dont", size: number) => nsTry(from.ns, "ping", "-M", df, "-s", String(size), "-c", "1", "-W", "2", to.ip);

    // 28: ICMP and IP headers. Too big a pod or overlay MTU and the kernel refuses (ICMP
    // frag needed): the DF ping fails.
    expect(sized("do", mtu - 28).ok).toBe(true);
    // The same size without DF: had it not fit, the kernel would have split it, inner or
    // outer packet, and the counters below would show it.
    expect(sized("dont", mtu - 28).ok).toBe(true);
    const over = sized("do", mtu - 27);
    expect(over.ok).toBe(false);
    expect(over.out).toContain(`local error: message too long, mtu=${mtu}`);
    expect(where.map(fragCounters)).toEqual(before);
  });

  it("an agent restart loses no packets of established pod traffic, and keeps its TCP connections", async () => {
    const n1 = c.nodes[0]!;
    const log = () => readFileSync(join(n1.stateDir, "agent.log"), "utf8");
    const procs: ChildProcess[] = [];
    try {
      /** An echo connection from one pod to another, once it has echoed; its echoes so far. */
      const echoFlow = async (from: PodSpec, to: PodSpec, port: string) => {
        const server = nodeIn(to.ns, ECHO_SERVER, port);
        procs.push(server.child);
        await expect.poll(server.lines, { timeout: 10_000 }).toContain("listening");
        const client = nodeIn(from.ns, ECHO_CLIENT, to.ip, port);
        procs.push(client.child);
        const echoes = () => client.lines().filter((l) => l.startsWith("echo ")).length;
        await expect.poll(echoes, { timeout: 10_000 }).toBeGreaterThan(0);
        return { client, echoes };
      };
      // TCP from node1 to node2 (the fast path's, across nodes), ICMP from node1 to node3:
      // both through the restarted agent's node.
      const { client, echoes } = await echoFlow(pods[1]!, pods[2]!, "7100");
      // And TCP between node1's two pods, which the fast path carries: the new agent puts its
      // program in place of the old one under this connection.
      const { client: local, echoes: localEchoes } = await echoFlow(pods[0]!, pods[1]!, "7101");

      // Every 50 ms until stopped after the new agent's reconcile, however long that takes.
      const flood = spawn("ip", ["netns", "exec", pods[0]!.ns, "ping", "-i", "0.05", "-W", "1", pods[4]!.ip], { stdio: ["ignore", "pipe", "ignore"] });
      procs.push(flood);
      let out = "";
      flood.stdout.on("data", (d: Buffer) => (out += d.toString()));
      const floodDone = new Promise((r) => flood.on("close", r));
      const answered = () => [...out.matchAll(/bytes from .*icmp_seq=(\d+)/g)].map((m) => Number(m[1]));
      const replies = () => answered().length;
      await expect.poll(replies, { timeout: 10_000 }).toBeGreaterThan(5); // established before the stop
      c.stopAgent(n1);
      // Onto a converged node a restart changes nothing and logs nothing. A stale route of
      // weft's protocol, unused by any pod, gives its first reconcile something to delete:
      // the log line shows that reconcile ran.
      inNs(n1.ns, "ip", "route", "add", "10.244.250.0/24", "via", "192.168.77.250", "dev", "eth0", "proto", "87");
      const logFrom = log().length;
      c.startAgent(n1);
      await expect
        .poll(() => log().slice(logFrom), { timeout: 10_000, interval: 50 })
        .toContain("route del 10.244.250.0/24 via 192.168.77.250 dev eth0");
      expect(routeDsts(n1.ns)).not.toContain("10.244.250.0/24");
      const fastPathOn = log().slice(logFrom).includes("fast path on");
      if (fastPathOn) await expect.poll(() => log().slice(logFrom).split("fast path: on the veth of pod").length - 1, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
      const [echoesAt, repliesAt, localAt] = [echoes(), replies(), localEchoes()];
      // Both flows go on after the new agent's reconcile: the connection made before the
      // restart carries ten more round trips, the ping gets ten more replies.
      await expect
        .poll(() => ({ echoes: echoes(), last: client.lines().at(-1) }), { timeout: 10_000 })
        .toSatisfy((v: { echoes: number }) => v.echoes >= echoesAt + 10);
      await expect.poll(replies, { timeout: 10_000 }).toBeGreaterThanOrEqual(repliesAt + 10);
      await expect.poll(localEchoes, { timeout: 10_000 }).toBeGreaterThanOrEqual(localAt + 10);
      flood.kill("SIGINT");
      await floodDone;
      // Every echo up to the last answered one was answered: none lost across the restart
      // (those still in flight when ping was stopped are no loss, however many a loaded
      // machine leaves).
      const seen = new Set(answered());
      const unanswered = Array.from({ length: Math.max(...seen) }, (_, i) => i + 1).filter((n) => !seen.has(n));
      expect(unanswered, out.slice(-300)).toEqual([]);
      for (const cl of [client, local]) {
        expect(cl.child.exitCode, cl.lines().slice(-3).join("\n")).toBeNull();
        expect(cl.lines().filter((l) => !l.startsWith("echo "))).toEqual([expect.stringMatching(/^connected from port \d+$/)]);
      }
    } finally {
      for (const p of procs) p.kill("SIGKILL");
    }
  });

  it("removing a node from the file removes its routes, neighbors and FDB entries; adding it back restores them", async () => {
    const [n1, n2, n3] = c.nodes as [typeof c.nodes[0], typeof c.nodes[0], typeof c.nodes[0]];
    c.writeNodesFile([n1, n2]);
    await expect
      .poll(() => routeDsts(n1.ns).includes(n3.podCIDR) || routeDsts(n2.ns).includes(n3.podCIDR), { timeout: 10_000, message: "node3's routes still present" })
      .toBe(false);
    for (const n of [n1, n2]) {
      const neigh = inNs(n.ns, "ip", "neigh", "show", "dev", "weft.1");
      expect(neigh).not.toContain(n3.podCIDR.replace("/24", ""));
      const fdb = inNs(n.ns, "bridge", "fdb", "show", "dev", "weft.1");
      expect(fdb).not.toContain(n3.ip);
    }
    expect(ping(pods[0]!, pods[4]!.ip)).toBe(false);

    c.writeNodesFile();
    await c.waitRoutes(n1, [n2, n3]);
    await c.waitRoutes(n2, [n1, n3]);
    expect(ping(pods[0]!, pods[4]!.ip)).toBe(true);
  });
});

describe("overlay with direct routing (same L2)", () => {
  let c: Cluster;
  let pods: PodSpec[];

  beforeAll(async () => {
    requireBuild();
    c = new Cluster({ prefix: `${PREFIX}d`, nodes: 2, workDir: mkdtempSync(join(tmpdir(), "weft-e2e-")), directRouting: "auto" });
    await c.up();
    countVxlanOnWire(c);
    pods = c.nodes.map((n, i) => c.addPod(n, `q${i}`));
  });

  afterAll(() => c?.destroy());

  it("routes pod traffic via the peer's node IP, without encapsulation", () => {
    const route = JSON.parse(inNs(c.nodes[0]!.ns, "ip", "-j", "route", "show", c.nodes[1]!.podCIDR)) as Array<{ gateway: string; dev: string }>;
    expect(route[0]).toMatchObject({ gateway: c.nodes[1]!.ip, dev: "eth0" });
    const before = vxlanPacketsOnWire(c);
    expect(ping(pods[0]!, pods[1]!.ip, 3)).toBe(true);
    expect(vxlanPacketsOnWire(c)).toBe(before);
  });
});
