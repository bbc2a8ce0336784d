// Network namespaces for integration tests. Every name carries a prefix unique to this
// test process, and `cleanupAll` removes everything made (also after a failure), so a
// run leaves the host exactly as it found it.
import { execFileSync, spawnSync } from "node:child_process";
import { inNs, netnsNames } from "../../lab/exec";

/** `ip` by absolute path: a test may hand the processes it starts a PATH without it. */
export const IP = "/usr/sbin/ip";

const PREFIX = `wt${process.pid.toString(36)}`;
const made = new Set<string>();
let counter = 0;

export function uniqueName(role: string): string {
  return `${PREFIX}-${role}${counter++}`.slice(0, 15);
}

export function createNetns(role: string): string {
  const name = uniqueName(role);
  execFileSync("ip", ["netns", "add", name]);
  made.add(name);
  return name;
}

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

export function deleteNetns(name: string): void {
  spawnSync("ip", ["netns", "del", name]);
  made.delete(name);
}

/** The lab's: runs a command inside netns `ns`; returns stdout, throws with stderr on failure. */
export { inNs };

/** Like inNs but reports success instead of throwing. */
export function nsTry(ns: string, cmd: string, ...args: string[]): { ok: boolean; out: string } {
  const r = spawnSync("ip", ["netns", "exec", ns, cmd, ...args], { encoding: "utf8" });
  return { ok: r.status === 0, out: r.stdout + r.stderr };
}

/** One echo request from `fromNs`; true when answered within `waitSeconds`. */
export function ping(fromNs: string, ip: string, waitSeconds = 2): boolean {
  return nsTry(fromNs, "ping", "-c", "1", "-W", String(waitSeconds), ip.includes(":") ? "-6" : "-4", ip).ok;
}

/** `ip -j` output parsed (addresses, routes, links) inside a netns. */
export function ipJson<T = unknown>(ns: string, ...args: string[]): T {
  return JSON.parse(inNs(ns, "ip", "-j", ...args) || "[]") as T;
}

/** The names of the links in a netns. */
export function mtuOf(ns: string, dev: string): number {
  return ipJson<Array<{ mtu: number }>>(ns, "link", "show", dev)[0]!.mtu;
}

export function linkNames(ns: string): string[] {
  return ipJson<Array<{ ifname: string }>>(ns, "link", "show").map((l) => l.ifname);
}

export function cleanupAll(): void {
  for (const name of [...made]) deleteNetns(name);
}

/** Names of namespaces this process made that still exist (should be none after cleanup). */
export function leftovers(): string[] {
  return netnsNames(PREFIX);
}

/**
 * The bridge's MAC spoof checks in `bridge weft`, sorted: "guarded <port> <comment>" and
 * "allowed <port> <mac> <comment>" lines (none without the table).
 */
export function spoofChecks(ns: string): string[] {
  const list = (set: string) => nsTry(ns, "nft", "list", "set", "bridge", "weft", set).out;
  const guarded = [...list("guarded").matchAll(/"(veth[0-9a-f]{8})" comment "([^"]+)"/g)].map((m) => `guarded ${m[1]} ${m[2]}`);
  const allowed = [...list("allowed").matchAll(/"(veth[0-9a-f]{8})" \. ([0-9a-f:]{17}) comment "([^"]+)"/g)].map((m) => `allowed ${m[1]} ${m[2]} ${m[3]}`);
  return [...guarded, ...allowed].sort();
}

/** Per-pod state of `inet weft`: set/map elements with their comments, and non-base chains. */
export function weftState(ns: string): string[] {
  const r = spawnSync(IP, ["netns", "exec", ns, "nft", "-j", "list", "table", "inet", "weft"], { encoding: "utf8" });
  if (r.status !== 0) return [];
  type Val = { elem: { val: string; comment?: string } };
  type Obj = {
    set?: { name: string; elem?: Array<string | Val> };
    map?: { name: string; elem?: Array<[string | Val, { jump: { target: string } }]> };
    chain?: { name: string; hook?: string };
  };
  const state: string[] = [];
  const text = (e: string | Val): string => (typeof e === "string" ? e : `${e.elem.val} "${e.elem.comment}"`);
  for (const o of (JSON.parse(r.stdout) as { nftables: Obj[] }).nftables) {
    for (const e of o.set?.elem ?? []) state.push(`${o.set!.name} ${text(e)}`);
    for (const [k, v] of o.map?.elem ?? []) state.push(`${o.map!.name} ${text(k)} : jump ${v.jump.target}`);
    if (o.chain && !o.chain.hook) state.push(`chain ${o.chain.name}`);
  }
  return state.sort();
}
