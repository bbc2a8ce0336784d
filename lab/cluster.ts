// A Kubernetes-like cluster made of network namespaces on this machine: an underlay
// "switch" namespace with a bridge, one namespace per node running `weft agent
// --nodes FILE`, and pods created by invoking the weft CNI plugin as a runtime would.
// Used by `npm run lab`, the multi-node e2e tests and the datapath benchmark. Nothing
// touches the host's own interfaces: every address lives inside these namespaces.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic } from "../shared/atomic-file";
import { cniEnv, inNs, netnsNames, run, sleep } from "./exec";
import { addressOf } from "../shared/ip";

export const BIN = join(import.meta.dirname, "..", "dist", "bin");

export interface NodeSpec {
  name: string;
  ns: string;
  ip: string;
  podCIDR: string;
  stateDir: string;
}

export interface PodSpec {
  name: string;
  ns: string;
  node: NodeSpec;
  ip: string;
}

export interface ClusterOptions {
  /** names every namespace and link, so clusters of different runs never collide */
  prefix: string;
  nodes: number;
  /** where node state, the nodes file and logs go */
  workDir: string;
  directRouting?: "never" | "auto";
  resyncSeconds?: number;
  clusterCIDR?: string;
}

function netnsExists(name: string): boolean {
  return existsSync(`/run/netns/${name}`);
}

export class Cluster {
  readonly nodes: NodeSpec[] = [];
  readonly pods: PodSpec[] = [];
  readonly switchNs: string;
  readonly clusterCIDR: string;

  constructor(readonly opts: ClusterOptions) {
    this.switchNs = `${opts.prefix}-sw`;
    this.clusterCIDR = opts.clusterCIDR ?? "10.244.0.0/16";
    for (let i = 1; i <= opts.nodes; i++) {
      this.nodes.push({
        name: `node${i}`,
        ns: `${opts.prefix}-n${i}`,
        ip: `192.168.77.${10 + i}`,
        podCIDR: `10.244.${i}.0/24`,
        stateDir: join(opts.workDir, `node${i}`),
      });
    }
  }

  get nodesFile(): string {
    return join(this.opts.workDir, "nodes.json");
  }

  /**
   * The environment of the agents and plugin calls: ours, with TMPDIR in the work dir. The
   * executable unpacks its native addon to $TMPDIR/.bun-<hash>.node, and destroy() then
   * removes that file with everything else.
   */
  private get env(): NodeJS.ProcessEnv {
    return { ...process.env, TMPDIR: join(this.opts.workDir, "tmp") };
  }

  /** Builds the underlay: a switch bridge and one veth per node, node IPs on a /24. */
  createUnderlay(): void {
    mkdirSync(join(this.opts.workDir, "tmp"), { recursive: true });
    run("ip", "netns", "add", this.switchNs);
    inNs(this.switchNs, "ip", "link", "add", "sw", "type", "bridge");
    inNs(this.switchNs, "ip", "link", "set", "sw", "up");
    for (const [i, n] of this.nodes.entries()) this.createNodeNs(n, i + 1);
  }

  private createNodeNs(n: NodeSpec, i: number): void {
    run("ip", "netns", "add", n.ns);
    inNs(n.ns, "ip", "link", "set", "lo", "up");
    inNs(this.switchNs, "ip", "link", "add", `port${i}`, "type", "veth", "peer", "name", "eth0", "netns", n.ns);
    inNs(this.switchNs, "ip", "link", "set", `port${i}`, "master", "sw", "up");
    inNs(n.ns, "ip", "addr", "add", `${n.ip}/24`, "dev", "eth0");
    inNs(n.ns, "ip", "link", "set", "eth0", "up");
    mkdirSync(n.stateDir, { recursive: true });
  }

  /**
   * Writes the nodes file atomically (the agents re-read it when it changes). `path`: a
   * file other than the shared one (an agent started with that file; the scale bench).
   */
  writeNodesFile(nodes: NodeSpec[] = this.nodes, path: string = this.nodesFile): void {
    const doc = { clusterCIDR: this.clusterCIDR, nodes: nodes.map((n) => ({ name: n.name, ip: n.ip, podCIDR: n.podCIDR })) };
    writeFileAtomic(path, `${JSON.stringify(doc, null, 2)}\n`);
  }

  /**
   * Starts `weft agent --nodes FILE` inside a node's namespace, logging to its state dir.
   * `nodesFile`: the file this agent watches (default: the cluster's shared one).
   */
  startAgent(n: NodeSpec, extra: string[] = [], nodesFile: string = this.nodesFile): ChildProcess {
    const log = openSync(join(n.stateDir, "agent.log"), "a");
    const args = [
      "netns", "exec", n.ns, join(BIN, "weft"), "agent",
      "--nodes", nodesFile,
      "--node-name", n.name,
      "--state-dir", n.stateDir,
      "--cni-conf-dir", n.stateDir,
      "--direct-routing", this.opts.directRouting ?? "never",
      "--resync", String(this.opts.resyncSeconds ?? 30),
      ...extra,
    ];
    const child = spawn("ip", args, { stdio: ["ignore", log, log], detached: true, env: this.env });
    writeFileSync(join(n.stateDir, "agent.pid"), String(child.pid));
    return child;
  }

  stopAgent(n: NodeSpec): void {
    this.stopAgents([n]);
  }

  /**
   * SIGTERMs the agents of `nodes` all at once, then waits for each to exit (SIGKILL after
   * 5 s). A pid file names our agent only while that process runs with the node's state
   * dir: after a reboot (/tmp on disk) the pid may be anybody's.
   */
  private stopAgents(nodes: NodeSpec[]): void {
    const stopping = nodes.flatMap((n) => {
      const pidFile = join(n.stateDir, "agent.pid");
      const pid = pidIn(pidFile);
      if (pid === undefined) return [];
      if (!isAgentOf(pid, n)) {
        rmSync(pidFile, { force: true });
        return [];
      }
      signal(pid, "SIGTERM");
      return [{ pid, pidFile }];
    });
    // Wait for them: a next agent (a restart) must not race one still running.
    for (const { pid, pidFile } of stopping) {
      if (!waitGone(pid, 5000)) {
        signal(pid, "SIGKILL");
        waitGone(pid, 5000);
      }
      rmSync(pidFile, { force: true });
    }
  }

  /** Underlay, nodes file and agents, then waits until every node routes to every other. */
  async up(): Promise<void> {
    this.createUnderlay();
    this.writeNodesFile();
    for (const n of this.nodes) this.startAgent(n);
    await this.waitReady();
    for (const n of this.nodes) await this.waitRoutes(n, this.nodes.filter((p) => p !== n));
  }

  /** Waits until every node wrote subnet.json and the conflist (the agent's "ready"). */
  async waitReady(timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (const n of this.nodes) {
      while (!existsSync(join(n.stateDir, "10-weft.conflist"))) {
        if (Date.now() > deadline) throw new Error(`${n.name}: agent not ready after ${timeoutMs} ms (see ${join(n.stateDir, "agent.log")})`);
        await sleep(50);
      }
    }
  }

  /** Waits until `node` holds a route for each of `peers`' pod CIDRs. */
  async waitRoutes(node: NodeSpec, peers: NodeSpec[], timeoutMs = 15_000): Promise<number> {
    const start = Date.now();
    for (;;) {
      const have = new Set(routeDsts(node.ns));
      if (peers.every((p) => have.has(p.podCIDR))) return Date.now() - start;
      if (Date.now() - start > timeoutMs) throw new Error(`${node.name}: routes to ${peers.map((p) => p.podCIDR).join(", ")} missing`);
      await sleep(20);
    }
  }

  /** Creates a pod on `node` by running the weft plugin's ADD inside the node namespace. */
  addPod(node: NodeSpec, name: string): PodSpec {
    const ns = `${this.opts.prefix}-${name}`;
    run("ip", "netns", "add", ns);
    inNs(ns, "ip", "link", "set", "lo", "up");
    const r = this.cni(node, "ADD", name, ns);
    if (r.status !== 0) throw new Error(`ADD ${name} on ${node.name}: ${r.stdout}`);
    const ip = addressOf((JSON.parse(r.stdout) as { ips: Array<{ address: string }> }).ips[0]!.address);
    const pod = { name, ns, node, ip };
    this.pods.push(pod);
    return pod;
  }

  deletePod(pod: PodSpec): void {
    this.cni(pod.node, "DEL", pod.name, pod.ns);
    spawnSync("ip", ["netns", "del", pod.ns]);
    this.pods.splice(this.pods.indexOf(pod), 1);
  }

  private cni(node: NodeSpec, command: string, id: string, ns: string) {
    const conf = JSON.parse(readFileSync(join(node.stateDir, "10-weft.conflist"), "utf8")) as { name: string; cniVersion: string; plugins: object[] };
    const plugin = { cniVersion: conf.cniVersion, name: conf.name, ...conf.plugins[0] };
    return spawnSync("ip", ["netns", "exec", node.ns, join(BIN, "weft")], {
      input: JSON.stringify(plugin),
      encoding: "utf8",
      // Our whole environment, as a runtime passes its own (containerd: os.Environ()).
      env: { ...this.env, ...cniEnv({ command, containerId: id, netns: `/run/netns/${ns}`, path: BIN }) },
    });
  }

  /** Stops the agents and removes every namespace and file this cluster made. */
  destroy(): void {
    this.stopAgents(this.nodes);
    this.pods.length = 0;
    // Every namespace is found by prefix: this cluster's and those of an earlier `--keep` run.
    for (const ns of netnsNames(`${this.opts.prefix}-`)) spawnSync("ip", ["netns", "del", ns]);
    rmSync(this.opts.workDir, { recursive: true, force: true });
  }

  /** Attaches to a cluster an earlier process left up (`--keep`), by its prefix. */
  exists(): boolean {
    return netnsExists(this.switchNs);
  }
}

export function routeDsts(ns: string): string[] {
  const out = spawnSync("ip", ["netns", "exec", ns, "ip", "-j", "-4", "route", "show"], { encoding: "utf8" }).stdout;
  try {
    return (JSON.parse(out || "[]") as Array<{ dst: string }>).map((r) => r.dst);
  } catch {
    return [];
  }
}

/** The pid a pid file holds; undefined without the file. */
function pidIn(file: string): number | undefined {
  try {
    return Number(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
}

/** Waits up to `ms` for `pid` to exit (a blocking wait, no process per step); whether it did. */
function waitGone(pid: number, ms: number): boolean {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let t = 0; t < ms && alive(pid); t += 50) Atomics.wait(pause, 0, 0, 50);
  return !alive(pid);
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Whether `pid` is a `weft agent` run for node `n` (its command line names n's state dir). */
function isAgentOf(pid: number, n: NodeSpec): boolean {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    return argv.includes("agent") && argv.includes(n.stateDir);
  } catch {
    return false;
  }
}

/** Running, not a zombie: an exited child of ours stays one until our event loop reaps it. */
export function alive(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0] !== "Z";
  } catch {
    return false;
  }
}

