// Small helpers shared by the nftables and iptables backends: the normalised description
// of a pod both backends work from, and its names.
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

// Both nft and iptables cap comments (nft at 128 bytes); CNI container IDs are usually 64 hex
// characters, so long keys are replaced by a digest (still deterministic, so DEL finds them).
const MAX_COMMENT = 128;

export function podKey(network: string, containerId: string, ifname: string): string {
  const key = `${network}/${containerId}/${ifname}`;
  // The key is quoted inside nft and iptables-restore scripts: one with anything that could
  // end the quotes or the line (an ifname may hold any byte but "/", ":" and whitespace) is
  // digested too, so that ADD can name such a pod's rules and DEL find them.
  const quotable = /^[\x21-\x7e]+$/.test(key) && !/["\\]/.test(key);
  return quotable && key.length < MAX_COMMENT ? key : `weft-h:${hash(key, 40)}`;
}

/** What GC keeps: the network, and the pod key of each of its valid attachments. */
export interface Keep {
  network: string;
  valid: readonly string[];
}

/**
 * GC's test for a rule's pod key: a pod of the network that no valid key names. A digested
 * key names no network, so it is never taken for a stale pod (of this network or another).
 */
export function staleIn(keep: Keep): (key: string) => boolean {
  const valid = new Set(keep.valid);
  return (key) => key.startsWith(`${keep.network}/`) && !valid.has(key);
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

/**
 * Validates a pod's "address/prefix", as CNI results carry it; returns the address in
 * canonical form with its family and its subnet (the host bits cleared).
 */
export function parsePodCidr(text: string): Required<PodAddr> {
  const net = parseCIDR(text);
  if (!net) throw new Error(`firewall: ${JSON.stringify(text)} is not an address with a prefix`);
  return { ip: formatIP(net.ip), family: net.ip.family, subnet: formatCIDR(networkOf(net), net.prefix) };
}

export const MULTICAST: Record<Family, string> = { 4: "224.0.0.0/4", 6: "ff00::/8" };

/**
 * The weft agent's table (family ip) and its chain that marks the cluster's traffic for
 * FORWARD accept while the policy drops (agent/overlay-rules.ts).
 */
export const OVERLAY_TABLE = "weft-overlay";
export const OVERLAY_FORWARD_CHAIN = "forward";

/**
 * How that chain's rules name the node's pod CIDR, which they mark with the rest of the
 * cluster's, at the end of their comment: the weft plugin looks for it before it leaves a
 * pod's IPv4 mark to the agent.
 */
export function marksNote(cidr: string): string {
  return `marks ${cidr}`;
}
