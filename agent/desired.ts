// What the kernel should hold, computed from the node list alone: a pure function, so the
// whole overlay layout (which peer gets which route, neighbor and FDB entry; who is routed
// directly) is decided in one place that unit tests can pin down.
import { contains, containsNet, formatCIDR, formatIP, ipToBytes, networkOf, overlaps, parseCIDR, parseIP, type IP, type IPNet } from "../shared/ip";
import { formatMac } from "../shared/mac";
import type { NodeInfo, NodeSnapshot } from "./types";

/**
 * rtm_protocol of every route the agent installs (0x57, "W"). Unassigned in iproute2's
 * rt_protos; the agent lists, replaces and deletes only routes carrying it, so routes
 * that others installed, even to the same prefixes, are never touched.
 */
export const WEFT_RTPROT = 0x57;

export type DirectRouting = "never" | "auto";

/**
 * The VTEP MAC of a node: 0e:fe followed by the four bytes of its IPv4 address. 0x0e has
 * the locally-administered bit set and the multicast bit clear, so it is a valid unicast
 * address that no vendor assigns. Deriving it (rather than reading the device's random
 * MAC and publishing it) means a recreated device, or a node that restarted, keeps the
 * MAC its peers already have in their neighbor and FDB tables.
 */
export function vtepMac(nodeIP: string): string {
  const ip = parseIP(nodeIP);
  if (!ip || ip.family !== 4) throw new Error(`VTEP MAC needs an IPv4 node address, not "${nodeIP}"`);
  return formatMac(Uint8Array.of(0x0e, 0xfe, ...ipToBytes(ip)));
}

/** A route the agent wants; `dev` names which of the agent's two devices it leaves through. */
export interface WantedRoute {
  dst: string;
  gw: string;
  dev: "overlay" | "underlay";
  onlink: boolean;
}

export interface WantedNeighbor {
  ip: string;
  mac: string;
}

export interface WantedFdb {
  mac: string;
  dst: string;
}

export interface Peer {
  name: string;
  nodeIP: string;
  /** the peer's pod CIDR, normalised to its network address */
  podCIDR: string;
  /** "vxlan": through the tunnel; "direct": a plain route via the node IP (same L2) */
  mode: "vxlan" | "direct";
}

export interface SelfNode {
  name: string;
  nodeIP: string;
  podCIDR: string;
  vtepMac: string;
  /** the overlay device's own address: the pod CIDR's network address, /32 */
  address: string;
}

export interface Desired {
  self: SelfNode;
  peers: Peer[];
  routes: WantedRoute[];
  neighbors: WantedNeighbor[];
  fdb: WantedFdb[];
  /** nodes left out, with why (no address yet, overlapping CIDR, …) */
  skipped: Array<{ name: string; reason: string }>;
}

export interface DesiredOptions {
  /** the cluster CIDR (normaliseCIDR): a node whose pod CIDR lies outside it is skipped */
  cluster: IPNet;
  directRouting: DirectRouting;
  /** our underlay address with its prefix ("192.168.77.11/24"): the L2 subnet for direct routing */
  underlay?: string;
}

/** An IPv4 CIDR normalised to its network address, or null. */
export function normaliseCIDR(s: string): IPNet | null {
  const net = parseCIDR(s);
  if (!net || net.ip.family !== 4) return null;
  return { ip: networkOf(net), prefix: net.prefix };
}

const cidrText = (n: IPNet): string => formatCIDR(n.ip, n.prefix);

type Usable = { ok: true; ip: IP; net: IPNet } | { ok: false; reason: string };

/**
 * A node's address and pod CIDR (normalised), or why it cannot take part (yet). A pod CIDR
 * outside the cluster CIDR would have its pods' traffic to other nodes masqueraded as
 * leaving the cluster.
 */
function usable(n: NodeInfo, cluster: IPNet): Usable {
  const no = (reason: string): Usable => ({ ok: false, reason });
  if (!n.ip) return no("no node address yet");
  const ip = parseIP(n.ip);
  if (!ip || ip.family !== 4) return no(`node address "${n.ip}" is not IPv4`);
  if (!n.podCIDR) return no("no pod CIDR yet");
  const net = normaliseCIDR(n.podCIDR);
  if (!net) return no(`pod CIDR "${n.podCIDR}" is not an IPv4 CIDR`);
  if (!containsNet(cluster, net)) return no(`pod CIDR ${cidrText(net)} is outside the cluster CIDR ${cidrText(cluster)}`);
  return { ok: true, ip, net };
}

export type SelfStatus = { ok: true; self: SelfNode } | { ok: false; reason: string };

/** Our own node's overlay identity, or why it cannot be had yet (`cluster`: the cluster CIDR). */
export function selfNode(snapshot: NodeSnapshot, nodeName: string, cluster: IPNet): SelfStatus {
  const me = snapshot.nodes.find((n) => n.name === nodeName);
  if (!me) return { ok: false, reason: `node "${nodeName}" is not in the node list yet` };
  const u = usable(me, cluster);
  if (!u.ok) return { ok: false, reason: `node "${nodeName}": ${u.reason}` };
  const { net } = u;
  const ip = formatIP(u.ip);
  return {
    ok: true,
    self: { name: me.name, nodeIP: ip, podCIDR: cidrText(net), vtepMac: vtepMac(ip), address: `${formatIP(net.ip)}/32` },
  };
}

/**
 * The kernel state for `self` and every usable peer. Peers come out sorted by name; a peer
 * whose pod CIDR overlaps ours or an older peer's, or that shares a node address with one,
 * is skipped (and reported) rather than allowed to hijack the other's traffic. Older by the
 * node objects' creation (where the source knows it), then by name: a node added later,
 * whatever its name, can never take over a running node's pods.
 */
export function computeDesired(snapshot: NodeSnapshot, self: SelfNode, o: DesiredOptions): Desired {
  const underlay = o.underlay ? parseCIDR(o.underlay) : null;
  const taken: IPNet[] = [parseCIDR(self.podCIDR)!];
  const usedIPs = new Set<string>([self.nodeIP]);
  const out: Desired = { self, peers: [], routes: [], neighbors: [], fdb: [], skipped: [] };
  const byName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  const byAge = (a: NodeInfo, b: NodeInfo): number => {
    const [x, y] = [a.created ?? "", b.created ?? ""];
    return x < y ? -1 : x > y ? 1 : byName(a, b);
  };
  const others = snapshot.nodes.filter((n) => n.name !== self.name).sort(byAge);
  for (const n of others) {
    const u = usable(n, o.cluster);
    if (!u.ok) {
      out.skipped.push({ name: n.name, reason: u.reason });
      continue;
    }
    const { ip, net } = u;
    const nodeIP = formatIP(ip);
    const clash = taken.find((t) => overlaps(t, net));
    if (clash) {
      out.skipped.push({ name: n.name, reason: `pod CIDR ${cidrText(net)} overlaps ${cidrText(clash)}` });
      continue;
    }
    if (usedIPs.has(nodeIP)) {
      out.skipped.push({ name: n.name, reason: `node address ${nodeIP} is used by another node` });
      continue;
    }
    taken.push(net);
    usedIPs.add(nodeIP);
    const direct = o.directRouting === "auto" && underlay !== null && contains(underlay, ip);
    const podCIDR = cidrText(net);
    out.peers.push({ name: n.name, nodeIP, podCIDR, mode: direct ? "direct" : "vxlan" });
    if (direct) {
      out.routes.push({ dst: podCIDR, gw: nodeIP, dev: "underlay", onlink: false });
    } else {
      // The peer's pod CIDR network address stands for its VTEP: a permanent neighbor entry
      // gives it the peer's VTEP MAC, the FDB maps that MAC to the peer's node address, and
      // the route sends the whole CIDR there (onlink: the address is on no local subnet).
      const gw = formatIP(net.ip);
      const mac = vtepMac(nodeIP);
      out.neighbors.push({ ip: gw, mac });
      out.fdb.push({ mac, dst: nodeIP });
      out.routes.push({ dst: podCIDR, gw, dev: "overlay", onlink: true });
    }
  }
  out.peers.sort(byName);
  return out;
}
