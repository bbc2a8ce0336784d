// VXLAN devices: create one with exactly the parameters the overlay needs, and read a
// device's parameters back so a reconciler can tell a correct device from one somebody
// (or an older weft) configured differently.
import { formatIP, ipFromBytes, ipToBytes, parseIP } from "../ip";
import { attr, attrMap, be16, u32, u8 } from "./encoding";
import { createLink, type Link } from "./link";
import type { NetlinkSocket } from "./socket";

const IFLA_VXLAN_ID = 1;
const IFLA_VXLAN_GROUP = 2;
const IFLA_VXLAN_LINK = 3;
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_TTL = 5;
const IFLA_VXLAN_TOS = 6;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_LIMIT = 9;
const IFLA_VXLAN_PROXY = 11;
const IFLA_VXLAN_L2MISS = 13;
const IFLA_VXLAN_L3MISS = 14;
const IFLA_VXLAN_PORT = 15;
const IFLA_VXLAN_GROUP6 = 16;
const IFLA_VXLAN_GBP = 23;
const IFLA_VXLAN_COLLECT_METADATA = 25;
const IFLA_VXLAN_TTL_INHERIT = 28;
const IFLA_VXLAN_DF = 29;

export interface VxlanSpec {
  /** VNI (VXLAN_ID) */
  vni: number;
  /** source address of the encapsulated packets (the node IP) */
  local: string;
  /** ifindex of the underlay device the tunnel uses (VXLAN_LINK) */
  link: number;
  /** UDP destination port (4789 IANA, 8472 Linux default / flannel) */
  port: number;
  /** MAC learning from received frames; the overlay programs its FDB itself, so false */
  learning: boolean;
  mtu?: number;
  mac?: string;
}

/** What a VXLAN device says about itself; fields absent when the kernel did not report them. */
export interface VxlanInfo {
  vni?: number;
  local?: string;
  link?: number;
  port?: number;
  learning?: boolean;
  /** a multicast group or remote that frames for unknown MACs go to */
  group?: string;
  /**
   * kernel settings the overlay never uses, on: names (l2miss, l3miss, gbp, external,
   * proxy, maxaddress, and the outer header's ttl, tos or df when not the kernel's default)
   */
  extras: string[];
}

function ipv4Bytes(s: string): Buffer {
  const ip = parseIP(s);
  if (!ip || ip.family !== 4) throw new Error(`VXLAN local address must be IPv4, not "${s}"`);
  return ipToBytes(ip);
}

/** IFLA_INFO_DATA for a vxlan link. */
function vxlanData(s: VxlanSpec): Buffer[] {
  return [
    attr(IFLA_VXLAN_ID, u32(s.vni)),
    attr(IFLA_VXLAN_LOCAL, ipv4Bytes(s.local)),
    attr(IFLA_VXLAN_LINK, u32(s.link)),
    attr(IFLA_VXLAN_PORT, be16(s.port)), // the one VXLAN attribute in network byte order
    attr(IFLA_VXLAN_LEARNING, u8(s.learning ? 1 : 0)),
  ];
}

/** Creates the VXLAN device `name` (fails with EEXIST when the name is taken). Left down. */
export function createVxlan(nl: NetlinkSocket, name: string, s: VxlanSpec): void {
  createLink(nl, name, "vxlan", {
    data: vxlanData(s),
    ...(s.mtu ? { mtu: s.mtu } : {}),
    ...(s.mac ? { mac: s.mac } : {}),
  });
}

/** The VXLAN parameters of a link; null when it is not a VXLAN device. */
export function vxlanInfo(link: Link): VxlanInfo | null {
  if (link.kind !== "vxlan") return null;
  if (!link.infoData) return { extras: [] };
  const x = attrMap(link.infoData);
  const id = x.get(IFLA_VXLAN_ID);
  const local = x.get(IFLA_VXLAN_LOCAL);
  const dev = x.get(IFLA_VXLAN_LINK);
  const port = x.get(IFLA_VXLAN_PORT);
  const learning = x.get(IFLA_VXLAN_LEARNING);
  const info: VxlanInfo = { extras: [] };
  if (id) info.vni = id.readUInt32LE(0);
  for (const g of [x.get(IFLA_VXLAN_GROUP), x.get(IFLA_VXLAN_GROUP6)]) {
    if (g && (g.length === 4 || g.length === 16) && g.some((b) => b !== 0)) info.group = formatIP(ipFromBytes(g));
  }
  // u8 attributes, and GBP a flag that is there only when on; `external` is collect_metadata.
  for (const [type, name] of [
    [IFLA_VXLAN_L2MISS, "l2miss"],
    [IFLA_VXLAN_L3MISS, "l3miss"],
    [IFLA_VXLAN_COLLECT_METADATA, "external"],
  ] as const) {
    if (x.get(type)?.[0]) info.extras.push(name);
  }
  if (x.has(IFLA_VXLAN_GBP)) info.extras.push("gbp");
  // The outer header as the kernel builds it by default (ttl 0: the route's hop limit; tos
  // 0; df unset): a ttl of 1, say, cuts off every peer behind a router. And no ARP proxy,
  // no cap on FDB entries (with one, the agent's adds fail once it is reached).
  if (x.get(IFLA_VXLAN_TTL_INHERIT)?.[0]) info.extras.push("ttl inherit");
  if (x.get(IFLA_VXLAN_PROXY)?.[0]) info.extras.push("proxy");
  for (const [type, name] of [
    [IFLA_VXLAN_TTL, "ttl"],
    [IFLA_VXLAN_TOS, "tos"],
    [IFLA_VXLAN_DF, "df"],
  ] as const) {
    const v = x.get(type)?.[0];
    if (v) info.extras.push(`${name} ${v}`);
  }
  const limit = x.get(IFLA_VXLAN_LIMIT);
  if (limit?.length === 4 && limit.readUInt32LE(0)) info.extras.push(`maxaddress ${limit.readUInt32LE(0)}`);
  if (local && local.length === 4) info.local = formatIP(ipFromBytes(local));
  if (dev) info.link = dev.readUInt32LE(0);
  if (port && port.length === 2) info.port = port.readUInt16BE(0);
  if (learning) info.learning = learning[0] !== 0;
  return info;
}

/**
 * Why `link` is not the device `want` describes (VXLAN parameters only: VNI, local, link,
 * port, learning, and none of a group or remote, l2miss, l3miss, gbp or external, which
 * would send frames elsewhere than the FDB says, nor an outer ttl, tos or df, an ARP proxy
 * or an FDB cap of its own;
 * MTU and MAC can be changed in place and are checked by the caller). Empty when it
 * matches. These need the device recreated.
 */
export function vxlanMismatches(link: Link, want: VxlanSpec): string[] {
  const info = vxlanInfo(link);
  if (!info) return [`kind is ${link.kind ?? "none"}, not vxlan`];
  const out: string[] = [];
  if (info.vni !== want.vni) out.push(`vni ${info.vni ?? "?"} != ${want.vni}`);
  if (info.local !== want.local) out.push(`local ${info.local ?? "none"} != ${want.local}`);
  if (info.link !== want.link) out.push(`dev #${info.link ?? "none"} != #${want.link}`);
  if (info.port !== want.port) out.push(`dstport ${info.port ?? "?"} != ${want.port}`);
  if ((info.learning ?? true) !== want.learning) out.push(`learning ${info.learning ?? "?"} != ${want.learning}`);
  if (info.group) out.push(`group ${info.group}`);
  for (const e of info.extras) out.push(e);
  return out;
}
