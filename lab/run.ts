// The lab's steps on a given cluster, printing through `say`: bring it up (replacing one
// an earlier `--keep` left), print who reaches whom and each node's overlay routes and FDB,
// then tear it down unless `--keep`; `--down` only removes it. Returns the exit status.
import type { Cluster, PodSpec } from "./cluster";
import { messageOf } from "../shared/cni/errors";
import { inNs, tryInNs } from "./exec";

function pingOk(from: PodSpec, to: PodSpec): boolean {
  return tryInNs(from.ns, "ping", "-c", "1", "-W", "1", to.ip);
}

/** Prints who reaches whom; returns how many pairs failed. */
function matrix(pods: PodSpec[], say: (line?: string) => void): number {
  let failures = 0;
  const label = (p: PodSpec) => `${p.name}@${p.node.name} ${p.ip}`;
  const width = Math.max(...pods.map((p) => label(p).length));
  say(`${"from \\ to".padEnd(width)}  ${pods.map((p) => p.name.padEnd(6)).join(" ")}`);
  for (const from of pods) {
    const cells = pods.map((to) => {
      if (from === to) return "-".padEnd(6);
      if (pingOk(from, to)) return "ok".padEnd(6);
      failures++;
      return "FAIL".padEnd(6);
    });
    say(`${label(from).padEnd(width)}  ${cells.join(" ")}`);
  }
  return failures;
}

function overlayTable(cluster: Cluster, say: (line?: string) => void): void {
  for (const n of cluster.nodes) {
    say(`\n${n.name} (${n.ip}, pods ${n.podCIDR})`);
    const routes = JSON.parse(inNs(n.ns, "ip", "-j", "-4", "route", "show", "dev", "weft.1") || "[]") as Array<{ dst: string; gateway?: string; flags?: string[] }>;
    for (const r of routes) say(`  route ${r.dst.padEnd(16)} via ${(r.gateway ?? "-").padEnd(12)} dev weft.1 ${(r.flags ?? []).join(" ")}`);
    const fdb = JSON.parse(inNs(n.ns, "bridge", "-j", "fdb", "show", "dev", "weft.1") || "[]") as Array<{ mac: string; dst?: string }>;
    for (const f of fdb.filter((e) => e.dst)) say(`  fdb   ${f.mac} -> ${f.dst}`);
  }
}

async function up(cluster: Cluster): Promise<PodSpec[]> {
  if (cluster.exists()) cluster.destroy();
  await cluster.up();
  const pods: PodSpec[] = [];
  for (const [i, n] of cluster.nodes.entries()) {
    pods.push(cluster.addPod(n, `pod${2 * i + 1}`), cluster.addPod(n, `pod${2 * i + 2}`));
  }
  return pods;
}

export async function runLab(cluster: Cluster, args: string[], say: (line?: string) => void): Promise<number> {
  if (args.includes("--down")) {
    cluster.destroy();
    say("weft lab: removed");
    return 0;
  }
  const keep = args.includes("--keep");
  let failures: number;
  try {
    say(`weft lab: underlay switch + ${cluster.nodes.length} nodes (network namespaces), weft agent on each, 2 pods per node\n`);
    const pods = await up(cluster);
    failures = matrix(pods, say);
    overlayTable(cluster, say);
    say(`\n${failures === 0 ? "all pods reach each other" : `${failures} pod pairs FAILED`}`);
    if (keep) {
      say(`\nleft up (--keep): try \`ip netns exec ${pods[0]!.ns} ping ${pods.at(-1)!.ip}\`; logs in ${cluster.opts.workDir}`);
      say("remove with: npm run lab -- --down");
    }
  } catch (e) {
    // What stopped the lab is the error to report; a teardown that fails as well is only said.
    if (!keep) {
      try {
        cluster.destroy();
      } catch (d) {
        say(`weft lab: could not tear down after a failure: ${messageOf(d)}`);
      }
    }
    throw e;
  }
  if (!keep) cluster.destroy();
  return failures === 0 ? 0 : 1;
}

/**
 * Ctrl-C or a kill while the lab waits: the agents run detached (no terminal's signal
 * reaches them), so the lab takes everything down itself unless `--keep`, then exits 128 +
 * the signal. (A Ctrl-C during a step kills that step's command instead, and the failed
 * run takes everything down.) Once: a second Ctrl-C during the teardown forces the exit.
 */
export function tearDownOnSignal(cluster: Cluster, args: string[], say: (line?: string) => void, exit: (code: number) => void = process.exit): void {
  for (const [sig, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
    process.once(sig, () => {
      try {
        if (!args.includes("--keep")) {
          say(`\nweft lab: ${sig}, tearing down`);
          cluster.destroy();
        }
      } catch (e) {
        say(`weft lab: could not tear down: ${messageOf(e)}`);
      } finally {
        exit(code);
      }
    });
  }
}
