// `--nodes FILE`: the node list from a JSON file, for labs without Kubernetes and for tests.
//
//   {"clusterCIDR": "10.244.0.0/16",
//    "nodes": [{"name": "n1", "ip": "192.168.50.11", "podCIDR": "10.244.1.0/24"}, …]}
//
// The file is re-read when it changes: fs.watch on its directory (catches in-place writes
// and rename-into-place alike, and a file that appears later) plus a periodic stat as a
// fallback for filesystems and editors that inotify misses. Content that does not parse
// (a writer caught mid-write, a typo) is logged and ignored; the last good list stays in
// force, and the next change or stat tick reads it again.
import { type FSWatcher, readFileSync, statSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import { parseCIDR, parseIP } from "../shared/ip";
import { Coalesced } from "./coalesced";
import type { NodeInfo, NodeSnapshot, NodeSource } from "./types";

function fail(msg: string): never {
  throw new Error(msg);
}

function ipv4CIDR(v: unknown, what: string): string {
  if (typeof v !== "string") fail(`${what} must be a string`);
  const n = parseCIDR(v);
  if (!n || n.ip.family !== 4) fail(`${what} "${v}" is not an IPv4 CIDR`);
  return v;
}

/** Parses and validates the file's content; throws with a message saying what is wrong. */
export function parseNodesFile(text: string): NodeSnapshot {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("must be a JSON object");
  const o = raw as Record<string, unknown>;
  const clusterCIDR = ipv4CIDR(o["clusterCIDR"], "clusterCIDR");
  if (!Array.isArray(o["nodes"])) fail(`"nodes" must be an array`);
  const seen = new Set<string>();
  const nodes: NodeInfo[] = (o["nodes"] as unknown[]).map((item, i) => {
    if (typeof item !== "object" || item === null) fail(`nodes[${i}] must be an object`);
    const n = item as Record<string, unknown>;
    const name = n["name"];
    if (typeof name !== "string" || name === "") fail(`nodes[${i}].name must be a non-empty string`);
    if (seen.has(name)) fail(`node "${name}" is listed twice`);
    seen.add(name);
    const ip = n["ip"];
    if (typeof ip !== "string" || parseIP(ip)?.family !== 4) fail(`nodes[${i}] (${name}): ip must be an IPv4 address`);
    return { name, ip, podCIDR: ipv4CIDR(n["podCIDR"], `nodes[${i}] (${name}): podCIDR`) };
  });
  return { clusterCIDR, nodes };
}

export interface FileSourceOptions {
  /** stat fallback period (default 2000 ms) */
  pollMs?: number;
  /** use fs.watch (default true; false leaves only the stat fallback, for tests) */
  watch?: boolean;
}

export class FileNodeSource implements NodeSource {
  private watcher: FSWatcher | null = null;
  private poll: ReturnType<typeof setInterval> | null = null;
  /** Coalesces a burst of change notifications (write, then close) into one read. */
  private readonly readSoon = new Coalesced(() => this.read());
  private lastStat = "";
  private lastText: string | null = null;
  private lastEmitted = "";
  private lastProblem = "";
  private onChange: (s: NodeSnapshot) => void = () => {};
  private onError: (m: string) => void = () => {};

  constructor(
    readonly path: string,
    private readonly o: FileSourceOptions = {},
  ) {}

  start(onChange: (s: NodeSnapshot) => void, onError?: (m: string) => void): void {
    this.onChange = onChange;
    if (onError) this.onError = onError;
    this.watchDir();
    this.poll = setInterval(() => this.tick(), this.o.pollMs ?? 2000);
    this.read();
  }

  stop(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.poll) clearInterval(this.poll);
    this.readSoon.stop();
    this.poll = null;
  }

  private watchDir(): void {
    if (this.watcher || this.o.watch === false) return;
    const name = basename(this.path);
    try {
      this.watcher = watch(dirname(this.path), { persistent: false }, (_event, file) => {
        // A null filename (some platforms) may be ours; anything else must match.
        if (file === null || file === name || String(file) === name) this.readSoon.ask(20);
      });
      this.watcher.on("error", () => {
        this.watcher?.close();
        this.watcher = null; // the stat tick retries
      });
    } catch {
      this.watcher = null; // directory missing: the stat tick retries
    }
  }

  private tick(): void {
    this.watchDir();
    let sig: string;
    try {
      const st = statSync(this.path);
      sig = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      sig = "missing";
    }
    if (sig !== this.lastStat) this.read();
  }

  private problem(msg: string): void {
    if (msg !== this.lastProblem) this.onError(msg);
    this.lastProblem = msg;
  }

  /** Reads the file; emits a snapshot when its content parses and differs from the last one. */
  read(): void {
    let text: string;
    try {
      const st = statSync(this.path);
      this.lastStat = `${st.ino}:${st.size}:${st.mtimeMs}`;
      text = readFileSync(this.path, "utf8");
    } catch (e) {
      this.lastStat = "missing";
      this.problem(`nodes file ${this.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; keeping the last node list`);
      return;
    }
    if (text === this.lastText) return;
    this.lastText = text;
    let snap: NodeSnapshot;
    try {
      snap = parseNodesFile(text);
    } catch (e) {
      this.problem(`nodes file ${this.path}: ${(e as Error).message}; ignored, keeping the last node list`);
      return;
    }
    this.lastProblem = "";
    const key = JSON.stringify(snap);
    if (key === this.lastEmitted) return;
    this.lastEmitted = key;
    this.onChange(snap);
  }
}
