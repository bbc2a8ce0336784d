// Converges the kernel to a Desired state: the VXLAN device, its address, and the
// neighbor, FDB and route entries of every peer. Everything here is synchronous netlink
// on one socket; the reconciler runs it start to finish without interleaving.
//
// What counts as ours (and so may be replaced or deleted): the device `weft.<vni>` and
// every neighbor, FDB entry and address on it; routes carrying WEFT_RTPROT, wherever they
// point. Nothing else is touched.
import { attempt } from "../shared/attempt";
import { parseCIDR, parseIP } from "../shared/ip";
import { addAddress, deleteAddress, listAddresses } from "../shared/netlink/address";
import { deleteLink, getLinkByIndex, getLinkByName, requireLink, setLinkUp, setMac, setMtu, type Link } from "../shared/netlink/link";
import { deleteFdb, deleteNeighbor, listFdb, listNeighbors, remoteText, replaceFdb, replaceNeighbor } from "../shared/netlink/neighbor";
import { addRoute, deleteRoute, listRoutes, RT_TABLE_MAIN, RTN_UNICAST } from "../shared/netlink/route";
import type { NetlinkSocket } from "../shared/netlink/socket";
import { createVxlan, vxlanMismatches, type VxlanSpec } from "../shared/netlink/vxlan";
import { WEFT_RTPROT, type Desired } from "./desired";
import { planFdb, planNeighbors, planRoutes, type Op, type RouteState } from "./plan";

/** VXLAN over IPv4: 20 (outer IP) + 8 (UDP) + 8 (VXLAN) + 14 (inner Ethernet). */
export const VXLAN_OVERHEAD = 50;

export interface Underlay {
  index: number;
  name: string;
  mtu: number;
  /** our node address on it, with its prefix: "192.168.77.11/24" */
  cidr: string;
}

/**
 * The underlay: the interface `iface` (or, by default, the one holding `nodeIP`) and our
 * node address on it with its prefix. Throws when the address is on no interface.
 */
export function findUnderlay(nl: NetlinkSocket, nodeIP: string, iface?: string): Underlay {
  const link = iface ? requireLink(nl, iface) : null;
  const want = parseIP(nodeIP);
  const addr = listAddresses(nl, link?.index ?? 0, 4).find((a) => {
    const net = parseCIDR(a.cidr);
    return net !== null && want !== null && net.ip.value === want.value;
  });
  if (!addr) throw new Error(`node address ${nodeIP} is not on ${iface ? `interface ${iface}` : "any interface"}`);
  const dev = link ?? getLinkByIndex(nl, addr.index);
  if (!dev) throw new Error(`interface #${addr.index} holding ${nodeIP} vanished`);
  return { index: dev.index, name: dev.name, mtu: dev.mtu, cidr: addr.cidr };
}

export interface DeviceSpec {
  name: string;
  vni: number;
  port: number;
  mtu: number;
}

function vxlanSpec(d: DeviceSpec, desired: Desired, underlay: Underlay): VxlanSpec {
  return { vni: d.vni, local: desired.self.nodeIP, link: underlay.index, port: d.port, learning: false, mtu: d.mtu, mac: desired.self.vtepMac };
}

/** Creates, repairs or recreates the VXLAN device; returns it, up and configured. */
export function ensureDevice(nl: NetlinkSocket, d: DeviceSpec, desired: Desired, underlay: Underlay, log: (line: string) => void): Link {
  const spec = vxlanSpec(d, desired, underlay);
  let link = getLinkByName(nl, d.name);
  if (link) {
    const wrong = vxlanMismatches(link, spec);
    if (wrong.length > 0) {
      deleteLink(nl, link.index);
      log(`link del ${d.name} (${wrong.join(", ")})`);
      link = null;
    }
  }
  if (!link) {
    createVxlan(nl, d.name, spec);
    log(
      `link add ${d.name} type vxlan id ${d.vni} local ${spec.local} dev ${underlay.name} dstport ${d.port} nolearning mtu ${d.mtu} address ${spec.mac}`,
    );
    link = requireLink(nl, d.name);
  }
  let changed = false;
  if (link.mtu !== d.mtu) {
    setMtu(nl, link.index, d.mtu);
    log(`link set ${d.name} mtu ${d.mtu}`);
    changed = true;
  }
  if (link.mac !== spec.mac) {
    setMac(nl, link.index, spec.mac!);
    log(`link set ${d.name} address ${spec.mac}`);
    changed = true;
  }
  if (!link.up) {
    setLinkUp(nl, link.index);
    log(`link set ${d.name} up`);
    changed = true;
  }
  return changed ? requireLink(nl, d.name) : link;
}

/** Exactly one IPv4 address on the device: the pod CIDR's network address, /32. */
export function ensureAddress(nl: NetlinkSocket, dev: Link, address: string, log: (line: string) => void): void {
  const have = listAddresses(nl, dev.index, 4);
  for (const a of have) {
    if (a.cidr === address) continue;
    deleteAddress(nl, dev.index, a.cidr);
    log(`addr del ${a.cidr} dev ${dev.name}`);
  }
  if (!have.some((a) => a.cidr === address)) {
    addAddress(nl, dev.index, address);
    log(`addr add ${address} dev ${dev.name}`);
  }
}

function routeText(r: RouteState, names: Map<number, string>): string {
  const dev = r.index ? (names.get(r.index) ?? `#${r.index}`) : "";
  return `${r.dst}${r.gw ? ` via ${r.gw}` : ""}${dev ? ` dev ${dev}` : ""}${r.onlink ? " onlink" : ""}${r.priority ? ` metric ${r.priority}` : ""}`;
}

/**
 * Brings the peers' neighbor, FDB and route entries to the desired state; returns
 * per-entry failures. Order matters for traffic in flight: stale routes go first, then
 * tunnel entries are added, then routes that use them, and only then are tunnel entries
 * nobody routes to any more removed. So a route never points into the tunnel before the
 * tunnel knows where to send its packets, nor after it forgot.
 */
export function convergePeers(nl: NetlinkSocket, dev: Link, underlay: Underlay, desired: Desired, log: (line: string) => void): string[] {
  const errors: string[] = [];
  const names = new Map([
    [dev.index, dev.name],
    [underlay.index, underlay.name],
  ]);

  // Of every type: one of ours turned into a blackhole (say) is replaced like a wrong one.
  const haveRoutes: RouteState[] = listRoutes(nl, 4, RT_TABLE_MAIN, { anyType: true })
    .filter((r) => r.protocol === WEFT_RTPROT)
    .map((r) => ({
      ...(r.type !== RTN_UNICAST ? { type: r.type } : {}),
      ...(r.multipath ? { multipath: true as const } : {}),
      dst: r.dst,
      onlink: r.onlink,
      ...(r.gw ? { gw: r.gw } : {}),
      ...(r.index ? { index: r.index } : {}),
      ...(r.priority ? { priority: r.priority } : {}),
    }));
  for (const r of haveRoutes) {
    if (r.index && !names.has(r.index)) names.set(r.index, getLinkByIndex(nl, r.index)?.name ?? `#${r.index}`);
  }
  const wantRoutes: RouteState[] = desired.routes.map((r) => ({
    dst: r.dst,
    gw: r.gw,
    index: r.dev === "overlay" ? dev.index : underlay.index,
    onlink: r.onlink,
  }));
  const routeOps = planRoutes(haveRoutes, wantRoutes);
  const neighOps = planNeighbors(listNeighbors(nl, 4, dev.index), desired.neighbors);
  const fdbOps = planFdb(listFdb(nl, dev.index), desired.fdb);
  const deletes = <T>(ops: Op<T>[]) => ops.filter((o): o is Extract<Op<T>, { op: "delete" }> => o.op === "delete");
  const upserts = <T>(ops: Op<T>[]) => ops.filter((o): o is Exclude<Op<T>, { op: "delete" }> => o.op !== "delete");

  // 1. routes nobody wants
  for (const op of deletes(routeOps)) {
    attempt(errors, () => {
      const spec = {
        dst: op.have.dst,
        protocol: WEFT_RTPROT,
        ...(op.have.gw ? { gw: op.have.gw } : {}),
        ...(op.have.index ? { index: op.have.index } : {}),
        ...(op.have.priority ? { priority: op.have.priority } : {}),
      };
      if (deleteRoute(nl, spec)) log(`route del ${routeText(op.have, names)}`);
    }, `route del ${op.have.dst}`);
  }
  // 2. tunnel entries: neighbor (VTEP MAC) and FDB (VTEP MAC -> node address)
  for (const op of upserts(neighOps)) {
    attempt(errors, () => {
      replaceNeighbor(nl, dev.index, op.want.ip, op.want.mac!);
      log(`neigh ${op.op} ${op.want.ip} lladdr ${op.want.mac} dev ${dev.name} nud permanent`);
    }, `neigh ${op.op} ${op.want.ip}`);
  }
  for (const op of upserts(fdbOps)) {
    attempt(errors, () => {
      replaceFdb(nl, dev.index, op.want.mac, op.want.dst!);
      log(`fdb ${op.op} ${op.want.mac} dst ${op.want.dst} dev ${dev.name} self permanent`);
    }, `fdb ${op.op} ${op.want.mac}`);
  }
  // 3. routes
  for (const op of upserts(routeOps)) {
    const w = op.want;
    attempt(errors, () => {
      addRoute(nl, { dst: w.dst, gw: w.gw!, index: w.index!, onlink: w.onlink, protocol: WEFT_RTPROT }, { replace: op.op === "replace" });
      log(`route ${op.op} ${routeText(w, names)}`);
    }, `route ${op.op} ${w.dst}`);
  }
  // 4. tunnel entries nobody routes to any more
  for (const op of deletes(neighOps)) {
    attempt(errors, () => {
      if (deleteNeighbor(nl, dev.index, op.have.ip)) log(`neigh del ${op.have.ip} dev ${dev.name}`);
    }, `neigh del ${op.have.ip}`);
  }
  for (const op of deletes(fdbOps)) {
    attempt(errors, () => {
      if (deleteFdb(nl, dev.index, op.have.mac, op.have)) log(`fdb del ${op.have.mac}${remoteText(op.have)} dev ${dev.name}`);
    }, `fdb del ${op.have.mac}`);
  }
  return errors;
}
