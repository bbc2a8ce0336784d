// Datapath benchmark: iperf3 TCP throughput through weft's dataplane beside the plain
// links it is built on, in one run on the same kernel, quoted as ratios:
//   - pod-to-pod across nodes over VXLAN, and with direct routing, vs node-to-node on
//     the underlay (the same switch namespace and veths the overlay rides on);
//   - same-node pod-to-pod (veth, bridge, veth) vs a bare veth pair between two fresh
//     namespaces.
// Two 2-node namespace clusters run side by side (`--direct-routing never` and `auto`).
// Every round measures every row once, so drift on a shared machine hits all rows alike,
// and each row reports the median of its ROUNDS runs, leaving out runs during which the
// hypervisor stole more than MAX_STEAL of the CPU (the bests are printed too, and every run
// with its steal: most of the noise is the machine's).
// During the VXLAN runs an nft counter on the underlay switch counts IPv4 fragments (MF
// or an offset; an oversized ping afterwards proves it counts) and the nodes' and pods'
// FragCreates (/proc/net/snmp) are compared before/after: the default MTU must not
// fragment.
// In this lab the "wire" is a veth, which costs next to nothing per byte, and one CPU
// runs a flow's whole path, so the ratios price the overlay's extra per-packet work in
// CPU time. Supplementary rows, with no goal: the cross-node rows again with the underlay
// capped by tc below that CPU limit, as a physical link caps it (what is left is the
// header and MTU cost), and same-node pods made by the Go reference bridge plugin (the
// topology's own cost, without weft's code).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster, type NodeSpec, type PodSpec } from "../lab/cluster";
import { inNs, REFERENCE_BIN_DIR, run, sleep } from "../lab/exec";
import { median, onCleanup, progress, table, type Row, runBridge } from "./common";
import { addressOf } from "../shared/ip";

// One run on this 2-CPU VM varies by ±10% (the hypervisor). With 8 rounds a ratio moved by
// up to 0.07 from one bench run to the next; with 16, by 0.03 for most rows.
const ROUNDS = Number(process.env["BENCH_DATAPATH_ROUNDS"] ?? 16);
const SHAPED_ROUNDS = 8;
/** Gbit/s of the underlay link in the supplementary runs: below what one CPU pushes through veths */
const SHAPED_GBIT = 3;
const SECONDS = Number(process.env["BENCH_DATAPATH_SECONDS"] ?? 2);
const AFFINITY = availableParallelism() > 1 ? "0,1" : "0,0";
const PREFIX = `wbd${process.pid.toString(36)}`;

/** Stops the iperf3 servers still running (a bench interrupted mid-run). */
const servers = new Set<() => void>();

/** One iperf3 TCP run from `clientNs` to `serverIp` in `serverNs`; received Gbit/s. */
async function iperf(serverNs: string, serverIp: string, clientNs: string): Promise<number> {
  const server = spawn("ip", ["netns", "exec", serverNs, "iperf3", "-s", "-1", "-B", serverIp], { stdio: "ignore" });
  const exited = new Promise<void>((r) => server.on("exit", () => r()));
  const stop = () => server.exitCode === null && server.signalCode === null && server.kill("SIGKILL");
  servers.add(stop);
  try {
    for (let attempt = 0; ; attempt++) {
      // -O 1: the first second (slow start) is left out of the result. -A: client on one
      // CPU, server on the other, the same for every row (the scheduler moving or stacking
      // them is most of the run-to-run noise on a small machine).
      const r = spawnSync("ip", ["netns", "exec", clientNs, "iperf3", "-c", serverIp, "-t", String(SECONDS), "-O", "1", "-A", AFFINITY, "-J"], {
        encoding: "utf8",
        timeout: (SECONDS + 20) * 1000,
      });
      let doc: { error?: string; end?: { sum_received?: { bits_per_second: number } } } = {};
      try {
        doc = JSON.parse(r.stdout) as typeof doc;
      } catch {
        doc = { error: (r.stderr || r.stdout || `exit ${r.status}`).trim() };
      }
      const bps = doc.end?.sum_received?.bits_per_second;
      if (!doc.error && bps) return bps / 1e9;
      // The server may not be listening yet: retry a refused connection for a while.
      if (attempt < 40 && /refused/i.test(doc.error ?? "")) {
        await sleep(50);
        continue;
      }
      throw new Error(`iperf3 ${clientNs} -> ${serverIp}: ${doc.error ?? "no result"}`);
    }
  } finally {
    const late = setTimeout(stop, 2000);
    await exited;
    clearTimeout(late);
    servers.delete(stop);
  }
}

/** A 2-node cluster with its agents up and routes converged. */
async function cluster(tag: string, directRouting: "never" | "auto"): Promise<Cluster> {
  const c = new Cluster({ prefix: `${PREFIX}${tag}`, nodes: 2, workDir: mkdtempSync(join(tmpdir(), `weft-bench-${tag}-`)), directRouting });
  onCleanup(() => c.destroy());
  await c.up();
  return c;
}

/** The route a node uses to a peer's pod CIDR: which device it leaves through. */
function routeDev(node: NodeSpec, peer: NodeSpec): string {
  const routes = JSON.parse(inNs(node.ns, "ip", "-j", "-4", "route", "show", peer.podCIDR) || "[]") as Array<{ dev?: string }>;
  return routes[0]?.dev ?? "none";
}

function podMtu(pod: PodSpec): number {
  return (JSON.parse(inNs(pod.ns, "ip", "-j", "link", "show", "eth0")) as Array<{ mtu: number }>)[0]!.mtu;
}

/** Counts IPv4 fragments and VXLAN packets crossing the underlay switch (bridge family). */
function installSwitchCounters(c: Cluster): void {
  const rules = `table bridge weftbench {
  chain forward {
    type filter hook forward priority 0; policy accept;
    ip frag-off & 0x3fff != 0 counter comment "fragments"
    udp dport 4789 counter comment "vxlan"
  }
}
`;
  const r = spawnSync("ip", ["netns", "exec", c.switchNs, "nft", "-f", "-"], { input: rules, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`nft in ${c.switchNs}: ${r.stderr}`);
}

function switchCounters(c: Cluster): { fragments: number; vxlan: number } {
  const doc = JSON.parse(inNs(c.switchNs, "nft", "-j", "list", "table", "bridge", "weftbench")) as {
    nftables: Array<{ rule?: { comment?: string; expr: Array<{ counter?: { packets: number } }> } }>;
  };
  const count = (name: string) => {
    const rule = doc.nftables.find((o) => o.rule?.comment === name)?.rule;
    return rule?.expr.find((e) => e.counter)?.counter?.packets ?? NaN;
  };
  return { fragments: count("fragments"), vxlan: count("vxlan") };
}

/** IPv4 fragments this namespace created (FragCreates in its /proc/net/snmp). */
function fragCreates(ns: string): number {
  const lines = inNs(ns, "cat", "/proc/net/snmp").split("\n").filter((l) => l.startsWith("Ip:"));
  const names = lines[0]!.split(/\s+/);
  const values = lines[1]!.split(/\s+/);
  return Number(values[names.indexOf("FragCreates")]);
}

/** Two fresh namespaces joined by a bare veth pair (default MTU), nothing else. */
function vethPair(): { a: string; b: string; bIp: string } {
  const a = `${PREFIX}-va`;
  const b = `${PREFIX}-vb`;
  onCleanup(() => {
    spawnSync("ip", ["netns", "del", a]);
    spawnSync("ip", ["netns", "del", b]);
  });
  run("ip", "netns", "add", a);
  run("ip", "netns", "add", b);
  for (const ns of [a, b]) run("ip", "-n", ns, "link", "set", "lo", "up");
  run("ip", "-n", a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", b);
  run("ip", "-n", a, "addr", "add", "10.250.0.1/24", "dev", "eth0");
  run("ip", "-n", b, "addr", "add", "10.250.0.2/24", "dev", "eth0");
  run("ip", "-n", a, "link", "set", "eth0", "up");
  run("ip", "-n", b, "link", "set", "eth0", "up");
  return { a, b, bIp: "10.250.0.2" };
}

/**
 * Two pods on one host made by the Go reference bridge plugin (Debian's, as in the plugin
 * bench) with the overlay's MTU and ipMasq (so conntrack runs in the host, as the agent's
 * masquerade table makes it run in a node): the same-node topology without weft's code.
 */
function referencePods(mtu: number): { a: string; b: string; bIp: string } | null {
  const dir = REFERENCE_BIN_DIR;
  if (!existsSync(join(dir, "bridge"))) return null;
  const host = `${PREFIX}-rh`;
  const pods = [`${PREFIX}-r1`, `${PREFIX}-r2`];
  const dataDir = mkdtempSync(join(tmpdir(), "weft-bench-ref-"));
  onCleanup(() => {
    for (const ns of [...pods, host]) spawnSync("ip", ["netns", "del", ns]);
    rmSync(dataDir, { recursive: true, force: true });
  });
  for (const ns of [host, ...pods]) run("ip", "netns", "add", ns);
  run("ip", "-n", host, "link", "set", "lo", "up");
  const conf = { cniVersion: "1.0.0", name: "bench-ref", type: "bridge", bridge: "cni0", isGateway: true, ipMasq: true, mtu, ipam: { type: "host-local", subnet: "10.251.0.0/24", dataDir } };
  const ips = pods.map((ns) => {
    const out = runBridge(dir, host, "ADD", ns, ns, conf);
    return addressOf((JSON.parse(out) as { ips: Array<{ address: string }> }).ips[0]!.address);
  });
  return { a: pods[0]!, b: pods[1]!, bIp: ips[1]! };
}

interface Measure {
  name: string;
  run: () => Promise<number>;
  /** Gbit/s of every run */
  runs: number[];
  /** share of CPU time the hypervisor took (steal) during each run */
  steal: number[];
}

const measure = (name: string, run: () => Promise<number>): Measure => ({ name, run, runs: [], steal: [] });
/** A run during which the hypervisor took more CPU than this (steal) measured its neighbours. */
const MAX_STEAL = 0.05;
/** The runs a row reports on: those with little steal, if at least 3, else all of them. */
function clean(m: Measure): number[] {
  const quiet = m.runs.filter((_, i) => m.steal[i]! <= MAX_STEAL);
  return quiet.length >= 3 ? quiet : m.runs;
}
/** What a row reports: the median of its clean runs (a lucky or an unlucky run moves it least). */
const typical = (m: Measure) => median(clean(m));
const best = (m: Measure) => Math.max(...m.runs);
const label = (m: Measure) => `${m.name} (median of ${clean(m).length === m.runs.length ? `${m.runs.length}` : `${clean(m).length}/${m.runs.length} quiet`})`;

/** [steal, total] jiffies of all CPUs, from /proc/stat. */
function cpuTimes(): [number, number] {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  return [f[7] ?? 0, f.slice(0, 8).reduce((a, b) => a + b, 0)];
}

/** Every measure once per round, round after round, so drift hits all of them alike. */
async function rounds(what: string, measures: Measure[], n: number): Promise<void> {
  for (let round = 0; round < n; round++) {
    for (const m of measures) {
      progress(`${what}: round ${round + 1}/${n}: ${m.name}`);
      const [s0, t0] = cpuTimes();
      m.runs.push(await m.run());
      const [s1, t1] = cpuTimes();
      m.steal.push(t1 > t0 ? (s1 - s0) / (t1 - t0) : 0);
    }
  }
}

const gbit = (x: number) => `${x.toFixed(2)} Gbit/s`;

function vs(m: Measure, base: Measure, goal?: number): Row {
  const ratio = typical(m) / typical(base);
  return {
    measure: label(m),
    value: gbit(typical(m)),
    baseline: `${gbit(typical(base))} (${base.name})`,
    ratio: ratio.toFixed(3),
    ...(goal === undefined ? {} : { goal: `≥ ${goal.toFixed(2)}`, ok: ratio >= goal }),
  };
}

const alone = (m: Measure): Row => ({ measure: label(m), value: gbit(typical(m)) });

/** Caps a node's underlay egress (HTB on eth0), as a physical link would. */
function shape(node: NodeSpec, rate: string): void {
  inNs(node.ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "htb", "default", "1");
  inNs(node.ns, "tc", "class", "replace", "dev", "eth0", "parent", "1:", "classid", "1:1", "htb", "rate", rate);
}

/** Runs the datapath benchmark and returns its report (a heading and Markdown tables). */
export async function benchDatapath(): Promise<string> {
  onCleanup(() => {
    for (const stop of servers) stop();
  });
  progress("datapath: two 2-node clusters (VXLAN, direct routing), pods, a bare veth pair");
  const vx = await cluster("v", "never");
  const dr = await cluster("d", "auto");
  const [v1, v2] = vx.nodes as [NodeSpec, NodeSpec];
  const [d1, d2] = dr.nodes as [NodeSpec, NodeSpec];
  const vxA = vx.addPod(v1, "pa");
  const vxB = vx.addPod(v2, "pb");
  const vxC = vx.addPod(v1, "pc"); // same node as pa
  const drA = dr.addPod(d1, "pa");
  const drB = dr.addPod(d2, "pb");
  const mtu = podMtu(vxA);
  const veth = vethPair();
  const ref = referencePods(mtu);

  // The paths are what the rows claim: tunnel in one cluster, plain route in the other.
  const vxDev = routeDev(v1, v2);
  const drDev = routeDev(d1, d2);
  if (vxDev !== "weft.1") throw new Error(`VXLAN cluster: route to ${v2.podCIDR} leaves via ${vxDev}, not weft.1`);
  if (drDev !== "eth0") throw new Error(`direct-routing cluster: route to ${d2.podCIDR} leaves via ${drDev}, not eth0`);

  // Largest unfragmented packet the pod MTU allows, DF set, pod to pod through the tunnel.
  const underlayMtu = (JSON.parse(inNs(v1.ns, "ip", "-j", "link", "show", "eth0")) as Array<{ mtu: number }>)[0]!.mtu;
  const dfPing = spawnSync("ip", ["netns", "exec", vxA.ns, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-M", "do", "-s", String(mtu - 28), vxB.ip]).status === 0;

  installSwitchCounters(vx);
  const fragBefore = fragCreates(v1.ns) + fragCreates(v2.ns) + fragCreates(vxA.ns) + fragCreates(vxB.ns);
  const switchBefore = switchCounters(vx);

  const underlay = measure("underlay node-to-node", () => iperf(v2.ns, v2.ip, v1.ns));
  const vxlan = measure("pod-to-pod across nodes, VXLAN", () => iperf(vxB.ns, vxB.ip, vxA.ns));
  const direct = measure("pod-to-pod across nodes, direct routing", () => iperf(drB.ns, drB.ip, drA.ns));
  const bare = measure("bare veth pair", () => iperf(veth.b, veth.bIp, veth.a));
  const same = measure("pod-to-pod same node", () => iperf(vxC.ns, vxC.ip, vxA.ns));
  const refSame = ref ? measure("pod-to-pod same node, Go reference bridge plugin", () => iperf(ref.b, ref.bIp, ref.a)) : null;
  const main = [underlay, vxlan, direct, bare, same, ...(refSame ? [refSame] : [])];
  await rounds("datapath", main, ROUNDS);

  const switchAfter = switchCounters(vx);
  const fragAfter = fragCreates(v1.ns) + fragCreates(v2.ns) + fragCreates(vxA.ns) + fragCreates(vxB.ns);
  const fragments = switchAfter.fragments - switchBefore.fragments;
  const created = fragAfter - fragBefore;
  const vxlanPackets = switchAfter.vxlan - switchBefore.vxlan;
  // The counter is live: an oversized ping between the nodes must show up in it.
  spawnSync("ip", ["netns", "exec", v1.ns, "ping", "-c", "1", "-W", "1", "-s", "2000", v2.ip]);
  const control = switchCounters(vx).fragments - switchAfter.fragments;

  // Supplementary: the same cross-node paths with the underlay link capped below what the
  // CPU can push, as a physical NIC caps it; what is left is the overlay's header and MTU cost.
  for (const n of [v1, d1]) shape(n, `${SHAPED_GBIT}gbit`);
  const sUnderlay = measure(`underlay node-to-node, ${SHAPED_GBIT} Gbit/s link`, () => iperf(v2.ns, v2.ip, v1.ns));
  const sVxlan = measure(`pod-to-pod across nodes, VXLAN, ${SHAPED_GBIT} Gbit/s link`, () => iperf(vxB.ns, vxB.ip, vxA.ns));
  const sDirect = measure(`pod-to-pod across nodes, direct routing, ${SHAPED_GBIT} Gbit/s link`, () => iperf(drB.ns, drB.ip, drA.ns));
  await rounds("datapath, shaped underlay", [sUnderlay, sVxlan, sDirect], SHAPED_ROUNDS);

  const rows: Row[] = [
    alone(underlay),
    vs(vxlan, underlay, 0.85),
    vs(direct, underlay, 0.95),
    alone(bare),
    vs(same, bare, 0.95),
    {
      measure: "IPv4 fragments on the underlay switch during the VXLAN runs / FragCreates in its nodes and pods",
      value: `${fragments} / ${created}`,
      baseline: `${vxlanPackets} VXLAN packets crossed the switch; a 2000-byte ping after added ${control} fragments`,
      goal: "0",
      ok: fragments === 0 && created === 0 && vxlanPackets > 0 && control > 0,
    },
    {
      measure: `pod-to-pod across nodes, ${mtu - 28}-byte ping with DF (pod MTU ${mtu}, underlay ${underlayMtu})`,
      value: dfPing ? "passes" : "FAILS",
      goal: "passes",
      ok: dfPing,
    },
  ];
  const extra: Row[] = [...(refSame ? [vs(refSame, bare)] : []), alone(sUnderlay), vs(sVxlan, sUnderlay), vs(sDirect, sUnderlay)];
  const all = [...main, sUnderlay, sVxlan, sDirect].map(
    (m) => `  ${m.name}: ${m.runs.map((x, i) => `${x.toFixed(2)} (${(m.steal[i]! * 100).toFixed(0)}%)`).join(", ")}`,
  );
  const bestRatio = (m: Measure, base: Measure) => (best(m) / best(base)).toFixed(3);
  return [
    `datapath: iperf3 TCP, 1 stream, client/server on CPUs ${AFFINITY}, ${SECONDS} s per run (+1 s omitted), ${ROUNDS} interleaved rounds; routes: VXLAN via ${vxDev}, direct via ${drDev}`,
    "",
    table(rows),
    "",
    "supplementary, no goal: same-node pods made by the Go reference bridge plugin (pod MTU and ipMasq as weft's; interleaved",
    `with the rows above), and the cross-node rows again with node1's underlay egress capped at ${SHAPED_GBIT} Gbit/s (tc htb), so the`,
    "link, not the CPU, is the limit, as on a physical network",
    "",
    table(extra),
    "",
    `ratios of bests instead of medians: VXLAN ${bestRatio(vxlan, underlay)}, direct routing ${bestRatio(direct, underlay)}, same node ${bestRatio(same, bare)}${refSame ? ` (Go reference bridge ${bestRatio(refSame, bare)})` : ""}`,
    `every run, Gbit/s (CPU steal by the hypervisor during the run; a row's median leaves out runs above ${MAX_STEAL * 100}% while 3 remain):`,
    ...all,
  ].join("\n");
}
