// Pod side of the bridge plugin: the veth pair and the container interface's
// addresses and routes.
import { CniError, ErrorCode, messageOf } from "../../shared/cni/errors";
import type { IPConfig, Route } from "../../shared/cni/result";
import { isErrno } from "../../shared/errno";
import { closeFile, openFile } from "../../shared/fs";
import { formatIP, networkOf, nextIP, parseCIDR } from "../../shared/ip";
import { addAddress, settleAddresses } from "../../shared/netlink/address";
import { createVeth, getLinkByName, setLinkUp, type Link } from "../../shared/netlink/link";
import { addRoute, type RouteSpec } from "../../shared/netlink/route";
import { randomBytes } from "../../shared/random";
import { withSocket, type NetlinkSocket } from "../../shared/netlink/socket";
import { inNetns } from "../../shared/netns";
import { setSysctl } from "../../shared/sysctl";
import { refuseRouterAds } from "./host";

/** Opens the container's netns file; a missing one is a clear error, not a stack trace. */
export function openNetns(path: string): number {
  try {
    return openFile(path, "r");
  } catch (e) {
    throw new CniError(ErrorCode.Internal, `failed to open netns "${path}": ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/**
 * Creates `veth<8 hex>` on the host and its peer `ifname` directly inside the container
 * netns, attached to the bridge. Returns the host end.
 */
export function createPodVeth(
  nl: NetlinkSocket,
  o: { netns: string; ifname: string; mtu: number; mac?: Buffer; bridge: Link },
): Link {
  const fd = openNetns(o.netns);
  try {
    for (let attempt = 0; ; attempt++) {
      const name = `veth${randomBytes(4).toString("hex")}`;
      try {
        // Attached to the bridge and up in the creating request: two round trips fewer.
        createVeth(nl, name, { mtu: o.mtu, peerName: o.ifname, peerNetnsFd: fd, master: o.bridge.index, up: true, ...(o.mac ? { peerMac: o.mac } : {}) });
      } catch (e) {
        if (!isErrno(e, "EEXIST")) throw e;
        // EEXIST names either side: the container's ifname is the one a user can fix.
        if (withSocket(o.netns, (c) => getLinkByName(c, o.ifname))) {
          throw new CniError(ErrorCode.Internal, `container veth name "${o.ifname}" already exists in ${o.netns}`);
        }
        if (attempt < 3) continue; // random host name collided; pick another
        throw e;
      }
      const host = getLinkByName(nl, name);
      if (!host) throw new CniError(ErrorCode.Internal, `veth ${name} vanished after creation`);
      refuseRouterAds(name, true);
      return host;
    }
  } finally {
    closeFile(fd);
  }
}

/** Fills in the gateway the reference computes for a gateway bridge: the subnet's first IP. */
export function withGateways(ips: IPConfig[], isGateway: boolean): IPConfig[] {
  if (!isGateway) return ips;
  return ips.map((ip) => {
    const net = parseCIDR(ip.address);
    if (ip.gateway || !net) return ip;
    return { ...ip, gateway: formatIP(nextIP(networkOf(net))) };
  });
}

/** Adds the default route per family when isDefaultGateway and IPAM gave none. */
export function withDefaultRoutes(routes: Route[], ips: IPConfig[], isDefaultGateway: boolean): Route[] {
  if (!isDefaultGateway) return routes;
  const out = [...routes];
  for (const ip of ips) {
    if (!ip.gateway) continue;
    const v4 = parseCIDR(ip.address)?.ip.family === 4;
    const dst = v4 ? "0.0.0.0/0" : "::/0";
    if (!out.some((r) => r.dst === dst)) out.push({ dst, gw: ip.gateway });
  }
  return out;
}

// How long ADD waits for IPv6 duplicate address detection, as the reference does.
const DAD_SETTLE_MS = 5_000;

/**
 * Configures the container end inside its netns: addresses, up (unless `up` is false: a
 * layer-2 pod whose workload brings it up itself), routes (a route without
 * gw goes via the gateway of its family, as the reference's ConfigureIface does). With
 * DAD on and an IPv6 gateway, it returns once the addresses have passed DAD, and fails if
 * one did not or 5 s went by, as the reference does: a pod never starts with an IPv6
 * address it cannot use.
 */
export function configurePodInterface(
  netns: string,
  ifname: string,
  ips: IPConfig[],
  routes: Route[],
  o: { enableDad: boolean; up?: boolean },
): Link {
  // One entry into the netns serves the sysctl (per-netns, by the writing thread's netns)
  // and the netlink socket (it stays in the netns it was opened in).
  const v6 = ips.filter((ip) => ip.address.includes(":"));
  const link = inNetns(netns, () => withSocket(undefined, (nl) => {
    const link = getLinkByName(nl, ifname);
    if (!link) throw new CniError(ErrorCode.Internal, `interface ${ifname} not found in ${netns}`);
    // A netns may have IPv6 turned off (its default, or lo's); an IPv6 address needs it on,
    // on the interface and on lo, as the reference sees to.
    if (v6.length) for (const dev of ["lo", ifname]) setSysctl(`net/ipv6/conf/${dev}/disable_ipv6`, "0");
    // Before it comes up, as the reference does: its link-local address then skips DAD
    // too, instead of staying tentative (and its timers running) for the pod's first second.
    // The interface is new: its values are the defaults, so they are written unread. A
    // layer-2 pod (no addresses) keeps them, as in the reference: what its workload
    // configures itself still gets DAD.
    if (ips.length) {
      if (!o.enableDad) setSysctl(`net/ipv6/conf/${ifname}/accept_dad`, "0");
      else for (const key of ["enhanced_dad", "accept_dad"]) setSysctl(`net/ipv6/conf/${ifname}/${key}`, "1");
    }
    // A gratuitous ARP as it comes up, so neighbours holding the address's old MAC (a
    // reused pod IP) learn the new one (the reference sets it too). The kernel announces
    // the addresses the link has at that moment, so they go on first.
    if (v6.length < ips.length) setSysctl(`net/ipv4/conf/${ifname}/arp_notify`, "1");
    for (const ip of ips) addAddress(nl, link.index, ip.address, { noDad: !o.enableDad });
    if (o.up !== false) setLinkUp(nl, link.index);
    for (const r of routes) {
      const dst = parseCIDR(r.dst);
      if (!dst) throw new CniError(ErrorCode.InvalidConfig, `invalid route destination "${r.dst}"`);
      const gw = r.gw ?? ips.find((i) => i.gateway && parseCIDR(i.address)?.ip.family === dst.ip.family)?.gateway;
      // With the attributes the result reports (CNI 1.1): priority, table and scope as the
      // reference applies them, and mtu and advmss too, which it reports but leaves out.
      const spec: RouteSpec = { dst: r.dst, index: link.index };
      if (gw) spec.gw = gw;
      if (r.priority !== undefined) spec.priority = r.priority;
      if (r.table !== undefined) spec.table = r.table;
      if (r.scope !== undefined) spec.scope = r.scope;
      if (r.mtu) spec.mtu = r.mtu;
      if (r.advmss) spec.advmss = r.advmss;
      try {
        // Beside any route to the same destination, as the reference adds them.
        addRoute(nl, spec, { alongside: true });
      } catch (e) {
        throw new CniError(ErrorCode.Internal, `failed to add route ${r.dst}${gw ? ` via ${gw}` : ""} in ${netns}: ${messageOf(e)}`);
      }
    }
    return link;
  }));
  if (o.enableDad && v6.some((ip) => ip.gateway)) {
    try {
      settleAddresses(netns, link.index, DAD_SETTLE_MS);
    } catch (e) {
      throw new CniError(ErrorCode.Internal, `failed to settle addresses for "${ifname}": ${messageOf(e)}`);
    }
  }
  return link;
}
