// Routes (RTM_*ROUTE), in the main table unless another is named.
import { deleted } from "../errno";
import { formatCIDR, formatIP, ipFromBytes, ipToBytes, networkOf, parseCIDR, parseIP } from "../ip";
import { afOf, align4, attr, findAttr, rtmsg, u32 } from "./encoding";
import { NLM_F, NetlinkSocket, type NetlinkMessage } from "./socket";

const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;
export const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
export const RTN_UNICAST = 1;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
/** RTNH_F_ONLINK, in rtm_flags: the gateway is reachable on the link even outside its subnets. */
const RTNH_F_ONLINK = 4;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_METRICS = 8;
const RTA_MULTIPATH = 9;
/** struct rtnexthop: u16 len, u8 flags, u8 hops, s32 ifindex; its attributes follow. */
const RTNH_SIZE = 8;
const RTA_TABLE = 15;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;

export interface RouteSpec {
  /** destination CIDR; "0.0.0.0/0" or "::/0" for the default route */
  dst: string;
  gw?: string;
  /** output interface index */
  index?: number;
  /** RT_SCOPE_*; by default link without a gateway, universe with one */
  scope?: number;
  onlink?: boolean;
  mtu?: number;
  advmss?: number;
  priority?: number;
  /** routing table (default main) */
  table?: number;
  /**
   * rtm_protocol: who owns the route (default RTPROT_BOOT, as `ip route add`). On delete,
   * when given, the kernel only removes a route of that protocol, so a daemon that tags its
   * routes can never delete somebody else's route to the same destination.
   */
  protocol?: number;
}

/** A route as listed; a multipath route is listed once per next hop, each marked multipath. */
export interface Route {
  multipath?: true;
  /** RTN_* (unicast unless listed with anyType) */
  type: number;
  dst: string;
  gw?: string;
  index?: number;
  family: 4 | 6;
  scope: number;
  onlink: boolean;
  priority?: number;
  protocol: number;
}

function payload(r: RouteSpec, forDelete = false): Buffer[] {
  const net = parseCIDR(r.dst);
  if (!net) throw new Error(`invalid route destination "${r.dst}"`);
  const family = net.ip.family;
  const table = r.table ?? RT_TABLE_MAIN;
  // rtm_table is a byte: a larger table is given by RTA_TABLE alone (RT_TABLE_UNSPEC here).
  const common = { family: afOf(family), dstLen: net.prefix, table: table < 256 ? table : 0 };
  const scope = r.scope ?? (r.gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  const hdr = forDelete
    ? rtmsg.format({ ...common, protocol: r.protocol ?? 0 })
    : rtmsg.format({ ...common, protocol: r.protocol ?? RTPROT_BOOT, scope, type: RTN_UNICAST, flags: r.onlink ? RTNH_F_ONLINK : 0 });
  const out = [hdr, attr(RTA_TABLE, u32(table))];
  if (net.prefix > 0) out.push(attr(RTA_DST, ipToBytes(networkOf(net))));
  if (r.gw) {
    const gw = parseIP(r.gw);
    if (!gw || gw.family !== family) throw new Error(`invalid gateway "${r.gw}" for ${r.dst}`);
    out.push(attr(RTA_GATEWAY, ipToBytes(gw)));
  }
  if (r.index) out.push(attr(RTA_OIF, u32(r.index)));
  if (r.priority !== undefined) out.push(attr(RTA_PRIORITY, u32(r.priority)));
  if (r.mtu || r.advmss) {
    const metrics: Buffer[] = [];
    if (r.mtu) metrics.push(attr(RTAX_MTU, u32(r.mtu)));
    if (r.advmss) metrics.push(attr(RTAX_ADVMSS, u32(r.advmss)));
    out.push(attr(RTA_METRICS, metrics));
  }
  return out;
}

/**
 * Adds a route; fails if one to the same destination (and metric) exists, unless `replace`
 * (it takes that one's place) or `alongside` (it joins it, as Go's RouteAddEcmp: an IPv6
 * route becomes a next hop of a multipath one, an IPv4 one an alternative; only an
 * identical route still fails).
 */
export function addRoute(nl: NetlinkSocket, r: RouteSpec, o: { replace?: boolean; alongside?: boolean } = {}): void {
  const flags = NLM_F.CREATE | (o.replace ? NLM_F.REPLACE : o.alongside ? 0 : NLM_F.EXCL);
  nl.request(`add route ${r.dst}${r.gw ? ` via ${r.gw}` : ""}`, RTM_NEWROUTE, flags, payload(r));
}

export function deleteRoute(nl: NetlinkSocket, r: RouteSpec): boolean {
  return deleted(["ESRCH"], () => nl.request(`delete route ${r.dst}`, RTM_DELROUTE, 0, payload(r, true)));
}

/** Unicast routes of one family in one table (default main); with `anyType`, blackhole, unreachable, … too. */
export function listRoutes(nl: NetlinkSocket, family: 4 | 6, wanted = RT_TABLE_MAIN, o: { anyType?: boolean } = {}): Route[] {
  const out: Route[] = [];
  for (const m of nl.request("list routes", RTM_GETROUTE, NLM_F.DUMP, [rtmsg.format({ family: afOf(family) })])) {
    const h = rtmsg.parse(m.data);
    const a = rtmsg.attrs(m.data);
    const table = a.get(RTA_TABLE)?.readUInt32LE(0) ?? h.table;
    if (table !== wanted || (h.type !== RTN_UNICAST && !o.anyType)) continue;
    const dst = a.get(RTA_DST);
    const route: Route = {
      type: h.type,
      dst: dst ? formatCIDR(ipFromBytes(dst), h.dstLen) : family === 4 ? "0.0.0.0/0" : "::/0",
      family,
      scope: h.scope,
      onlink: (h.flags & RTNH_F_ONLINK) !== 0,
      protocol: h.protocol,
    };
    const gw = a.get(RTA_GATEWAY);
    const oif = a.get(RTA_OIF)?.readUInt32LE(0);
    const priority = a.get(RTA_PRIORITY);
    if (gw) route.gw = formatIP(ipFromBytes(gw));
    if (oif) route.index = oif;
    if (priority) route.priority = priority.readUInt32LE(0);
    const multipath = a.get(RTA_MULTIPATH);
    if (multipath) for (const hop of nextHops(multipath)) out.push({ ...route, ...hop, multipath: true });
    else out.push(route);
  }
  return out;
}

/** A multipath route's next hops (gateway, interface and onlink each), one Route entry apiece. */
function nextHops(buf: Buffer): Array<Pick<Route, "gw" | "index" | "onlink">> {
  const hops: Array<Pick<Route, "gw" | "index" | "onlink">> = [];
  for (let off = 0; off + RTNH_SIZE <= buf.length; ) {
    const len = buf.readUInt16LE(off);
    if (len < RTNH_SIZE) break;
    const hop: Pick<Route, "gw" | "index" | "onlink"> = { index: buf.readInt32LE(off + 4), onlink: (buf[off + 2]! & RTNH_F_ONLINK) !== 0 };
    const gw = findAttr(buf.subarray(off + RTNH_SIZE, off + len), RTA_GATEWAY);
    if (gw) hop.gw = formatIP(ipFromBytes(gw));
    hops.push(hop);
    off += align4(len);
  }
  return hops;
}

/** For an RTM_NEWROUTE/RTM_DELROUTE notification, the route's protocol (RTPROT_*); else null. */
export function routeNotificationProtocol(m: NetlinkMessage): number | null {
  return m.type === RTM_NEWROUTE || m.type === RTM_DELROUTE ? rtmsg.parse(m.data).protocol : null;
}
