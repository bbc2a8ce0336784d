// Scale benchmark: a 50-node namespace cluster, one `weft agent --nodes FILE` and one pod
// per node, on this machine.
//
// What "from the file listing all 50 nodes" means here: every agent starts with a nodes
// file of its own that lists only itself (so it is ready and takes its pod, but knows no
// peer), all on one underlay switch. Then the full 50-node list is renamed into place over
// each agent's file (50 renames, well under a millisecond apart) and the clock runs from
// the first rename until every node holds routes to all 49 peers' pod CIDRs. The end is
// taken from `ip -ts monitor route` in every node namespace (kernel event timestamps, so
// the 50 watchers cost nothing while the agents work), then checked against `ip route`.
// Then each agent's resident memory (VmRSS, and its peak VmHWM, from /proc/<pid>/status)
// and pings between random pod pairs on different nodes.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN, Cluster, routeDsts, type NodeSpec, type PodSpec } from "../lab/cluster";
import { sleep, tryInNs } from "../lab/exec";
import { median, onCleanup, settleInPageCache, table } from "./common";

const NODES = Number(process.env["BENCH_SCALE_NODES"] ?? 50);
const PINGS = 5;
const PREFIX = `wbs${process.pid.toString(36)}`;
/** An address no agent routes: a probe that each route monitor is listening. */
const PROBE = "198.51.100.1/32";

/** `ip -ts monitor route` in one node namespace: when each destination was last added. */
class RouteMonitor {
  readonly added = new Map<string, number>();
  private readonly child: ChildProcess;
  private buf = "";

  constructor(readonly node: NodeSpec) {
    this.child = spawn("ip", ["netns", "exec", node.ns, "ip", "-ts", "-4", "monitor", "route"], { stdio: ["ignore", "pipe", "ignore"] });
    this.child.stdout!.setEncoding("utf8");
    this.child.stdout!.on("data", (d: string) => {
      this.buf += d;
      const lines = this.buf.split("\n");
      this.buf = lines.pop()!;
      for (const line of lines) this.line(line);
    });
  }

  private line(line: string): void {
    // [2026-11-28T15:08:41.238305] 10.244.2.0/24 via 10.244.2.0 dev weft.1 proto 87 onlink
    const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d+)\] (?!Deleted )(?:blackhole )?(\S+)/.exec(line);
    if (!m) return; // "Deleted …" lines and anything else
    const ms = new Date(m[1]!).getTime() + Number(`0.${m[2]}`) * 1000; // local time, as ip prints it
    const dst = m[3]!.includes("/") ? m[3]! : `${m[3]}/32`;
    this.added.set(dst, ms);
  }

  stop(): void {
    this.child.kill();
  }
}

/** Runs the scale benchmark and returns its report (a heading and a Markdown table). */
export async function benchScale(): Promise<string> {
  const c = new Cluster({ prefix: PREFIX, nodes: NODES, workDir: mkdtempSync(join(tmpdir(), "weft-bench-scale-")), resyncSeconds: 30 });
  const monitors: RouteMonitor[] = [];
  onCleanup(() => {
    for (const m of monitors) m.stop();
    c.destroy();
  });

  c.createUnderlay();
  settleInPageCache(join(BIN, "weft")); // agents' memory as on a node (see bench/common.ts)
  const own = (n: NodeSpec) => join(n.stateDir, "nodes.json");
  const tStart = Date.now();
  for (const n of c.nodes) {
    c.writeNodesFile([n], own(n));
    c.startAgent(n, [], own(n));
  }
  await c.waitReady(120_000);
  const readyMs = Date.now() - tStart;
  const pods: PodSpec[] = c.nodes.map((n, i) => c.addPod(n, `p${i + 1}`));

  for (const n of c.nodes) monitors.push(new RouteMonitor(n));
  await sleep(300);
  // Each monitor must be listening before the clock starts: a probe route it has to see.
  for (let deadline = Date.now() + 10_000; ; ) {
    for (const m of monitors) if (!m.added.has(PROBE)) spawnSync("ip", ["netns", "exec", m.node.ns, "ip", "route", "replace", "blackhole", PROBE]);
    if (monitors.every((m) => m.added.has(PROBE))) break;
    if (Date.now() > deadline) throw new Error("route monitors did not start");
    await sleep(100);
  }
  for (const m of monitors) spawnSync("ip", ["netns", "exec", m.node.ns, "ip", "route", "del", "blackhole", PROBE]);

  // The full list, staged beside every agent's file, then renamed over them all at once.
  const doc = { clusterCIDR: c.clusterCIDR, nodes: c.nodes.map((n) => ({ name: n.name, ip: n.ip, podCIDR: n.podCIDR })) };
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  for (const n of c.nodes) writeFileSync(`${own(n)}.full`, text);
  const t0 = Date.now();
  for (const n of c.nodes) renameSync(`${own(n)}.full`, own(n));
  const renamesMs = Date.now() - t0;

  const peersOf = (n: NodeSpec) => c.nodes.filter((p) => p !== n);
  const doneAt = (m: RouteMonitor): number | null => {
    let last = 0;
    for (const p of peersOf(m.node)) {
      const at = m.added.get(p.podCIDR);
      if (at === undefined) return null;
      last = Math.max(last, at);
    }
    return last;
  };
  const timeoutMs = 60_000;
  while (!monitors.every((m) => doneAt(m) !== null)) {
    if (Date.now() - t0 > timeoutMs) {
      const behind = monitors.filter((m) => doneAt(m) === null).map((m) => `${m.node.name} (${peersOf(m.node).filter((p) => !m.added.has(p.podCIDR)).length} missing)`);
      throw new Error(`not converged after ${timeoutMs / 1000} s: ${behind.join(", ")}`);
    }
    await sleep(20);
  }
  const observedMs = Date.now() - t0;
  const perNode = monitors.map((m) => doneAt(m)! - t0);
  const converged = Math.max(...perNode);
  for (const m of monitors) m.stop();

  // The events said added; the kernel must still hold them all.
  const missing = c.nodes.flatMap((n) => {
    const have = new Set(routeDsts(n.ns));
    return peersOf(n).filter((p) => !have.has(p.podCIDR)).map((p) => `${n.name}→${p.podCIDR}`);
  });
  if (missing.length) throw new Error(`routes missing after convergence: ${missing.slice(0, 10).join(", ")}`);

  // Resident memory of every agent (the pid `ip netns exec` exec'd into).
  const mem = c.nodes.map((n) => {
    const pid = Number(readFileSync(join(n.stateDir, "agent.pid"), "utf8"));
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
    const kb = (text: string, key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? NaN);
    return {
      name: /^Name:\s+(\S+)/m.exec(status)?.[1] ?? "?",
      rss: kb(status, "VmRSS") / 1024,
      hwm: kb(status, "VmHWM") / 1024,
      // what this agent alone holds: RSS less the pages it shares (the executable's, mostly)
      own: (kb(rollup, "Private_Clean") + kb(rollup, "Private_Dirty")) / 1024,
    };
  });
  const notAgent = mem.filter((m) => m.name !== "weft");
  if (notAgent.length) throw new Error(`agent pid is a "${notAgent[0]!.name}" process, not weft`);
  const rss = mem.map((m) => m.rss);
  const hwm = mem.map((m) => m.hwm);
  const priv = mem.map((m) => m.own);

  // Random pod pairs on different nodes (first/last node always among them).
  const pairs: Array<[PodSpec, PodSpec]> = [[pods[0]!, pods[pods.length - 1]!]];
  while (pairs.length < PINGS) {
    const a = pods[Math.floor(Math.random() * pods.length)]!;
    const b = pods[Math.floor(Math.random() * pods.length)]!;
    if (a.node !== b.node) pairs.push([a, b]);
  }
  const pinged = pairs.filter(([a, b]) => tryInNs(a.ns, "ping", "-c", "1", "-W", "2", b.ip));

  const mb = (x: number) => `${x.toFixed(1)} MB`;
  const rows = [
    {
      measure: `file listing all ${NODES} nodes → every node holds all ${NODES - 1} peers' routes`,
      value: `${(converged / 1000).toFixed(2)} s`,
      baseline: `median node ${(median(perNode) / 1000).toFixed(2)} s, first ${(Math.min(...perNode) / 1000).toFixed(2)} s`,
      goal: "< 5 s",
      ok: converged < 5000,
    },
    { measure: `agent resident memory (VmRSS), max of ${NODES}`, value: mb(Math.max(...rss)), baseline: `median ${mb(median(rss))}`, goal: "< 60 MB", ok: Math.max(...rss) < 60 },
    { measure: `agent peak resident memory (VmHWM), max of ${NODES}`, value: mb(Math.max(...hwm)), baseline: `median ${mb(median(hwm))}`, goal: "< 60 MB", ok: Math.max(...hwm) < 60 },
    { measure: `agent private memory (smaps_rollup Private_*), max of ${NODES}`, value: mb(Math.max(...priv)), baseline: `median ${mb(median(priv))}` },
    { measure: "random pod pairs on different nodes that ping", value: `${pinged.length}/${pairs.length}`, goal: `${pairs.length}/${pairs.length}`, ok: pinged.length === pairs.length },
    { measure: `${NODES} agents started together → all ready (conflist written)`, value: `${(readyMs / 1000).toFixed(2)} s` },
  ];
  return [
    `scale: ${NODES} node namespaces on one underlay switch, one agent (--nodes FILE, resync 30 s) and one pod each; the ${NODES} file renames took ${renamesMs} ms; times from route events (ip -ts monitor), the bench saw the last at ${(observedMs / 1000).toFixed(2)} s`,
    "",
    table(rows),
  ].join("\n");
}
