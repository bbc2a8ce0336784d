// Neighbor entries (RTM_*NEIGH): the IPv4/IPv6 neighbor table (ARP/NDP) and the bridge
// forwarding database. The overlay needs both on its VXLAN device: a permanent ARP entry
// "remote gateway address → remote VTEP MAC" (so the kernel never ARPs across the tunnel)
// and a permanent FDB entry "remote VTEP MAC → remote node IP" (so it knows where to send
// the encapsulated frame; learning is off).
import { deleted } from "../errno";
import { formatIP, ipFromBytes, ipToBytes, parseIP } from "../ip";
import { afOf, attr, be16, ndmsg, u32 } from "./encoding";
import { formatMac, parseMac } from "../mac";
import { NLM_F, NetlinkSocket, type NetlinkMessage } from "./socket";

const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const RTM_GETNEIGH = 30;
const AF_BRIDGE = 7;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NDA_PORT = 6;
const NDA_VNI = 7;
const NDA_IFINDEX = 8;
/** What a delete of an entry that is not there fails with. */
const NO_ENTRY = ["ENOENT", "ESRCH"];

/** NUD_* states (a bitmask in ndm_state). */
export const NUD = {
  INCOMPLETE: 0x01,
  REACHABLE: 0x02,
  STALE: 0x04,
  DELAY: 0x08,
  PROBE: 0x10,
  FAILED: 0x20,
  NOARP: 0x40,
  PERMANENT: 0x80,
} as const;

/** NTF_* flags (ndm_flags). */
export const NTF = { SELF: 0x02, MASTER: 0x04 } as const;

export interface Neighbor {
  index: number;
  /** the neighbor's IP address (canonical text) */
  ip: string;
  /** link-layer address "aa:bb:…"; absent for incomplete/failed entries */
  mac?: string;
  /** NUD_* bitmask */
  state: number;
}

/** A VXLAN remote: where frames to a MAC are encapsulated to. */
export interface FdbRemote {
  /** the remote endpoint (NDA_DST) */
  dst?: string;
  /** its own UDP port, VNI and output interface: reported only where not the device's */
  port?: number;
  vni?: number;
  via?: number;
}

export interface FdbEntry extends FdbRemote {
  index: number;
  mac: string;
  /** NUD_* bitmask */
  state: number;
  /** NTF_* bitmask */
  flags: number;
}

/** The address family and bytes of an IP given as text. */
function ipOf(s: string): { af: number; bytes: Buffer } {
  const ip = parseIP(s);
  if (!ip) throw new Error(`invalid IP address "${s}"`);
  return { af: afOf(ip.family), bytes: ipToBytes(ip) };
}

function message(
  family: number,
  index: number,
  state: number,
  flags: number,
  attrs: { dst?: Buffer; lladdr?: Buffer; port?: number; vni?: number; via?: number },
): Buffer[] {
  const out = [ndmsg.format({ family, index, state, flags })];
  if (attrs.dst) out.push(attr(NDA_DST, attrs.dst));
  if (attrs.lladdr) out.push(attr(NDA_LLADDR, attrs.lladdr));
  if (attrs.port !== undefined) out.push(attr(NDA_PORT, be16(attrs.port)));
  if (attrs.vni !== undefined) out.push(attr(NDA_VNI, u32(attrs.vni)));
  if (attrs.via !== undefined) out.push(attr(NDA_IFINDEX, u32(attrs.via)));
  return out;
}

// ---- IP neighbors (ARP / NDP) ----------------------------------------------------------

/**
 * Adds or replaces a neighbor entry: `ip neigh replace IP lladdr MAC dev X nud permanent`
 * by default. Replace semantics make it idempotent and let it fix a wrong MAC in one step.
 */
export function replaceNeighbor(nl: NetlinkSocket, index: number, ip: string, mac: string, state: number = NUD.PERMANENT): void {
  const dst = ipOf(ip);
  nl.request(
    `replace neighbor ${ip} lladdr ${mac}`,
    RTM_NEWNEIGH,
    NLM_F.CREATE | NLM_F.REPLACE,
    message(dst.af, index, state, 0, { dst: dst.bytes, lladdr: parseMac(mac) }),
  );
}

/** Deletes the neighbor entry for `ip` on the link; false when there was none. */
export function deleteNeighbor(nl: NetlinkSocket, index: number, ip: string): boolean {
  const dst = ipOf(ip);
  return deleted(NO_ENTRY, () => nl.request(`delete neighbor ${ip}`, RTM_DELNEIGH, 0, message(dst.af, index, 0, 0, { dst: dst.bytes })));
}

/** IP neighbor entries of one family, of one link (or all links when `index` is 0). */
export function listNeighbors(nl: NetlinkSocket, family: 4 | 6, index = 0): Neighbor[] {
  const out: Neighbor[] = [];
  for (const m of nl.request("list neighbors", RTM_GETNEIGH, NLM_F.DUMP, message(afOf(family), 0, 0, 0, {}))) {
    const h = ndmsg.parse(m.data);
    if (index && h.index !== index) continue;
    const a = ndmsg.attrs(m.data);
    const dst = a.get(NDA_DST);
    const lladdr = a.get(NDA_LLADDR);
    if (!dst) continue;
    const entry: Neighbor = { index: h.index, ip: formatIP(ipFromBytes(dst)), state: h.state };
    if (lladdr && lladdr.length === 6) entry.mac = formatMac(lladdr);
    out.push(entry);
  }
  return out;
}

// ---- bridge forwarding database (AF_BRIDGE) -------------------------------------------

/**
 * `bridge fdb replace MAC dev X dst IP self permanent`: on a VXLAN device, frames to MAC
 * are encapsulated to IP. NTF_SELF addresses the device's own FDB (VXLAN keeps one)
 * rather than the FDB of a bridge the device might be a port of.
 */
export function replaceFdb(nl: NetlinkSocket, index: number, mac: string, dst: string): void {
  nl.request(
    `replace fdb ${mac} dst ${dst}`,
    RTM_NEWNEIGH,
    NLM_F.CREATE | NLM_F.REPLACE,
    message(AF_BRIDGE, index, NUD.PERMANENT, NTF.SELF, { lladdr: parseMac(mac), dst: ipOf(dst).bytes }),
  );
}

/** A remote as `bridge fdb` writes it: "dst IP port P vni V via #I", what is set of it. */
export function remoteText(r: FdbRemote): string {
  let s = r.dst ? ` dst ${r.dst}` : "";
  if (r.port !== undefined) s += ` port ${r.port}`;
  if (r.vni !== undefined) s += ` vni ${r.vni}`;
  if (r.via !== undefined) s += ` via #${r.via}`;
  return s;
}

/**
 * Deletes an FDB entry. With a remote's `dst`, only that remote of the entry (a VXLAN MAC
 * may have several), named by all it holds: a delete without its port the kernel takes
 * for the remote on the device's port. Without, the whole entry. False when there was none.
 */
export function deleteFdb(nl: NetlinkSocket, index: number, mac: string, remote: FdbRemote = {}): boolean {
  const lladdr = parseMac(mac);
  const { dst, port, vni, via } = remote;
  const attrs = dst ? { lladdr, dst: ipOf(dst).bytes, port, vni, via } : { lladdr };
  return deleted(NO_ENTRY, () => nl.request(`delete fdb ${mac}${remoteText(remote)}`, RTM_DELNEIGH, 0, message(AF_BRIDGE, index, 0, NTF.SELF, attrs)));
}

/**
 * FDB entries of one device (or of all when `index` is 0). A VXLAN entry with several
 * remotes comes back as one entry per remote.
 */
export function listFdb(nl: NetlinkSocket, index = 0): FdbEntry[] {
  const out: FdbEntry[] = [];
  for (const m of nl.request("list fdb", RTM_GETNEIGH, NLM_F.DUMP, message(AF_BRIDGE, 0, 0, 0, {}))) {
    const h = ndmsg.parse(m.data);
    if (h.family !== AF_BRIDGE || (index && h.index !== index)) continue;
    const a = ndmsg.attrs(m.data);
    const lladdr = a.get(NDA_LLADDR);
    const dst = a.get(NDA_DST);
    if (!lladdr || lladdr.length !== 6) continue;
    const entry: FdbEntry = { index: h.index, mac: formatMac(lladdr), state: h.state, flags: h.flags };
    if (dst && (dst.length === 4 || dst.length === 16)) entry.dst = formatIP(ipFromBytes(dst));
    const port = a.get(NDA_PORT);
    const vni = a.get(NDA_VNI);
    const via = a.get(NDA_IFINDEX);
    if (port?.length === 2) entry.port = port.readUInt16BE(0);
    if (vni?.length === 4) entry.vni = vni.readUInt32LE(0);
    if (via?.length === 4) entry.via = via.readUInt32LE(0);
    out.push(entry);
  }
  return out;
}

/** For an RTM_NEWNEIGH/RTM_DELNEIGH notification (neighbor or FDB entry), its link's index; else null. */
export function neighborNotificationIndex(m: NetlinkMessage): number | null {
  return m.type === RTM_NEWNEIGH || m.type === RTM_DELNEIGH ? ndmsg.parse(m.data).index : null;
}
