// Routes (RTM_*ROUTE) in the main table.
import { formatRouteMessage, parseRouteMessage } from "netlink/dist/rt/structs.js";
import { RouteProtocol, RouteScope, RouteType, type RouteAttrs, type RouteFlags } from "netlink/dist/rt/gen_structs.js";
import { AttrStream } from "netlink/dist/structs.js";
import { formatCIDR, formatIP, ipFromBytes, ipToBytes, networkOf, parseCIDR, parseIP } from "../ip";
import { u32 } from "./link";
import { isErrno, NLM_F, NetlinkSocket } from "./socket";

const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;
const AF_INET = 2;
const AF_INET6 = 10;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RTN_UNICAST = 1;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
/** RTNH_F_ONLINK: the codec has no name for it. */
const RTNH_F_ONLINK = 4;

export interface RouteSpec {
  /** destination CIDR; "0.0.0.0/0" or "::/0" for the default route */
  dst: string;
  gw?: string;
  /** output interface index */
  index?: number;
  /** "link" for on-link routes without a gateway; defaults from the presence of gw */
  scope?: "link" | "universe";
  onlink?: boolean;
  mtu?: number;
  priority?: number;
  /**
   * rtm_protocol: who owns the route (default RTPROT_BOOT, as `ip route add`). On delete,
   * when given, the kernel only removes a route of that protocol, so a daemon that tags its
   * routes can never delete somebody else's route to the same destination.
   */
  protocol?: number;
}

export interface Route {
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
  const attrs: RouteAttrs = { table: RT_TABLE_MAIN };
  if (net.prefix > 0) attrs.dst = ipToBytes(networkOf(net));
  if (r.gw) {
    const gw = parseIP(r.gw);
    if (!gw || gw.family !== family) throw new Error(`invalid gateway "${r.gw}" for ${r.dst}`);
    attrs.gateway = ipToBytes(gw);
  }
  if (r.index) attrs.oif = r.index;
  if (r.priority !== undefined) attrs.priority = r.priority;
  if (r.mtu) attrs.metrics = { mtu: u32(r.mtu) };
  const scope = r.scope === "link" || (!r.gw && r.scope !== "universe") ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  const flags: RouteFlags = r.onlink ? { __unknown: RTNH_F_ONLINK } : {};
  const s = new AttrStream();
  formatRouteMessage(
    {
      kind: "route",
      data: forDelete
        ? {
            family: family === 4 ? AF_INET : AF_INET6,
            dstLen: net.prefix,
            table: RT_TABLE_MAIN,
            ...(r.protocol !== undefined ? { protocol: r.protocol } : {}),
          }
        : {
            family: family === 4 ? AF_INET : AF_INET6,
            dstLen: net.prefix,
            table: RT_TABLE_MAIN,
            protocol: r.protocol ?? RTPROT_BOOT,
            scope,
            type: RTN_UNICAST,
            flags,
          },
      attrs,
    },
    s,
  );
  return s.bufs as Buffer[];
}

export function addRoute(nl: NetlinkSocket, r: RouteSpec, o: { replace?: boolean } = {}): void {
  const flags = NLM_F.CREATE | (o.replace ? NLM_F.REPLACE : NLM_F.EXCL);
  nl.request(`add route ${r.dst}${r.gw ? ` via ${r.gw}` : ""}`, RTM_NEWROUTE, flags, payload(r));
}

export function deleteRoute(nl: NetlinkSocket, r: RouteSpec): boolean {
  try {
    nl.request(`delete route ${r.dst}`, RTM_DELROUTE, 0, payload(r, true));
    return true;
  } catch (e) {
    if (isErrno(e, "ESRCH")) return false;
    throw e;
  }
}

/** The codec decodes known enum values to their names; we compare numbers. */
function enumValue(e: Record<string, string | number>, v: string | number | undefined): number {
  if (v === undefined) return 0;
  return typeof v === "number" ? v : Number(e[v]);
}

/** Main-table unicast routes of one family. */
export function listRoutes(nl: NetlinkSocket, family: 4 | 6): Route[] {
  const s = new AttrStream();
  formatRouteMessage({ kind: "route", data: { family: family === 4 ? AF_INET : AF_INET6 }, attrs: {} }, s);
  const out: Route[] = [];
  for (const m of nl.request("list routes", RTM_GETROUTE, NLM_F.DUMP, s.bufs)) {
    const r = parseRouteMessage(m.data);
    const table = r.attrs.table ?? r.data.table;
    if (table !== RT_TABLE_MAIN || enumValue(RouteType, r.data.type) !== RTN_UNICAST) continue;
    const dst = r.attrs.dst
      ? formatCIDR(ipFromBytes(r.attrs.dst), r.data.dstLen ?? 0)
      : family === 4 ? "0.0.0.0/0" : "::/0";
    const route: Route = {
      dst,
      family,
      scope: enumValue(RouteScope, r.data.scope),
      onlink: ((r.data.flags?.__unknown ?? 0) & RTNH_F_ONLINK) !== 0,
      protocol: enumValue(RouteProtocol, r.data.protocol),
    };
    if (r.attrs.gateway) route.gw = formatIP(ipFromBytes(r.attrs.gateway));
    if (r.attrs.oif) route.index = r.attrs.oif;
    if (r.attrs.priority !== undefined) route.priority = r.attrs.priority;
    out.push(route);
  }
  return out;
}
