// Small helpers shared by the nftables and iptables backends: running a tool, finding it
// on PATH, and the normalised description of a pod both backends work from.
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { type Family, formatCIDR, formatIP, networkOf, parseCIDR, parseIP } from "../ip";

export type { Family };

export interface PodAddr {
  ip: string; // canonical text form, no prefix
  family: Family;
  subnet?: string; // the pod's subnet CIDR (only known on ADD)
}

/** A pod as the backends see it: who it is (`key`) and its addresses. */
export interface Pod {
  /** "<network>/<containerId>/<ifname>": written as a comment on every rule and element of the pod. */
  key: string;
  addrs: PodAddr[];
}

const located = new Map<string, string | null>();

/** Absolute path of `name` on PATH, or null; looked up once per process. */
export function which(name: string): string | null {
  let path = located.get(name);
  if (path === undefined) {
    path = null;
    for (const dir of (process.env.PATH ?? "").split(delimiter)) {
      if (!dir) continue;
      try {
        accessSync(join(dir, name), constants.X_OK);
        path = join(dir, name);
        break;
      } catch {
        // not in this directory
      }
    }
    located.set(name, path);
  }
  return path;
}

export interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs `file args` synchronously, feeding `input` on stdin. Never throws for a non-zero exit. */
export function run(file: string, args: string[], input?: string): RunResult {
  const r = spawnSync(file, args, { input, encoding: "utf8", maxBuffer: 64 << 20 });
  const stderr = r.error ? r.error.message : (r.stderr ?? "").trim();
  return { ok: !r.error && r.status === 0, stdout: r.stdout ?? "", stderr };
}

/** Like run(), but throws `what failed: <tool stderr>` on failure. */
export function mustRun(what: string, file: string, args: string[], input?: string): string {
  const r = run(file, args, input);
  if (!r.ok) throw new Error(`${what}: ${r.stderr || "exit status non-zero"}`);
  return r.stdout;
}

// Both nft and iptables cap comments (nft at 128 bytes); CNI container IDs are usually 64 hex
// characters, so long keys are replaced by a digest (still deterministic, so DEL finds them).
const MAX_COMMENT = 128;

export function podKey(network: string, containerId: string, ifname: string): string {
  const key = `${network}/${containerId}/${ifname}`;
  // The key is quoted inside nft and iptables-restore scripts: refuse anything that could end
  // the quotes or the line.
  if (!/^[\x21-\x7e]+$/.test(key) || /["\\]/.test(key)) {
    throw new Error(`firewall: invalid network name, container ID or ifname in ${JSON.stringify(key)}`);
  }
  return key.length < MAX_COMMENT ? key : `weft-h:${hash(key, 40)}`;
}

/**
 * A stable short digest for names (chains, long comments): FNV-1a, re-seeded per 8 hex
 * chars. Not node:crypto, which costs ~3 ms to load in the executable on every call.
 */
export function hash(text: string, hexChars: number): string {
  let out = "";
  for (let seed = 0x811c9dc5; out.length < hexChars; seed = Math.imul(seed ^ 0x5bd1e995, 0x01000193)) {
    let h = seed;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
    out += (h >>> 0).toString(16).padStart(8, "0");
  }
  return out.slice(0, hexChars);
}

/** Validates an address; returns it in canonical text form (as nft prints it) with its family. */
export function parseIp(text: string): { ip: string; family: Family } {
  const ip = parseIP(text);
  if (!ip) throw new Error(`firewall: ${JSON.stringify(text)} is not an IP address`);
  return { ip: formatIP(ip), family: ip.family };
}

/** Validates "address/prefix" of the given family; returns it with the host bits cleared. */
export function parseSubnet(text: string, family: Family): string {
  const net = parseCIDR(text);
  if (!net || net.ip.family !== family) {
    throw new Error(`firewall: ${JSON.stringify(text)} is not an IPv${family} subnet`);
  }
  return formatCIDR(networkOf(net), net.prefix);
}

export const MULTICAST: Record<Family, string> = { 4: "224.0.0.0/4", 6: "ff00::/8" };
