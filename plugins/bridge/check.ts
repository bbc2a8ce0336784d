// bridge CHECK: the prevResult must still be true of the kernel — the bridge (in
// promiscuous mode exactly when the config asks), the host veth on it, the container
// interface (a veth, that veth's peer) with its MAC, addresses and routes, and the IPAM
// reservation. Not the bridge's MAC, which the reference compares: a bridge weft did not
// create may change it as ports come and go.
import { CniError, ErrorCode } from "../../shared/cni/errors";
import { requirePrevResult, type PluginContext } from "../../shared/cni/skeleton";
import { formatCIDR, parseCIDR } from "../../shared/ip";
import { listAddresses } from "../../shared/netlink/address";
import { getLinkByName } from "../../shared/netlink/link";
import { listRoutes, RT_TABLE_MAIN, type Route } from "../../shared/netlink/route";
import { withSocket } from "../../shared/netlink/socket";
import { ipamCallOf, ipamCheck } from "../../ipam/index";
import type { BridgeConf } from "./config";

function fail(msg: string): never {
  throw new CniError(ErrorCode.Internal, msg);
}

/** "10.1.0.5/24" and "10.1.0.0/24" style strings compared after canonical formatting. */
function canonical(cidr: string): string {
  const n = parseCIDR(cidr);
  return n ? formatCIDR(n.ip, n.prefix) : cidr;
}

export function check(ctx: PluginContext<BridgeConf>): void {
  const { env, conf } = ctx;
  const prev = requirePrevResult(ctx);
  if (conf.ipam.type) ipamCheck(ipamCallOf(ctx));

  // The pod's interface (its index in the result) and the host veth, in one pass.
  const ifaces = prev.interfaces ?? [];
  let podIdx = -1;
  let hostIface: (typeof ifaces)[number] | undefined;
  for (let i = 0; i < ifaces.length; i++) {
    const f = ifaces[i]!;
    if (podIdx < 0 && f.name === env.ifname && f.sandbox === env.netns) podIdx = i;
    else if (!hostIface && !f.sandbox && f.name !== conf.bridge) hostIface = f;
  }
  if (podIdx < 0) fail(`prevResult has no interface ${env.ifname} in sandbox ${env.netns}`);
  const podIface = ifaces[podIdx]!;

  // The host veth's index, and the index of its peer (the pod's end), as the kernel sees them.
  const host = withSocket(undefined, (nl) => {
    const br = getLinkByName(nl, conf.bridge);
    if (!br || br.kind !== "bridge") fail(`bridge ${conf.bridge} not found`);
    // Both ways, as the reference: promiscMode false means the bridge is not promiscuous.
    if (br.promisc !== conf.promiscMode) {
      fail(`bridge ${conf.bridge} is ${br.promisc ? "" : "not "}in promiscuous mode, but the config's promiscMode is ${conf.promiscMode}`);
    }
    if (!hostIface) fail(`prevResult has no host veth for bridge ${conf.bridge}`);
    const link = getLinkByName(nl, hostIface.name);
    if (!link) fail(`host veth ${hostIface.name} not found`);
    if (link.master !== br.index) fail(`host veth ${hostIface.name} is not attached to ${conf.bridge}`);
    return link;
  });

  withSocket(env.netns, (nl) => {
    const link = getLinkByName(nl, env.ifname);
    if (!link) fail(`interface ${env.ifname} not found in ${env.netns}`);
    // As the reference: the pod's interface is a veth whose peer is the host veth.
    if (link.kind !== "veth") fail(`interface ${env.ifname} in ${env.netns} is not a veth`);
    if (link.peerIndex !== host.index || host.peerIndex !== link.index) {
      fail(`interface ${env.ifname} in ${env.netns} is not the peer of host veth ${host.name}`);
    }
    if (podIface.mac && link.mac !== podIface.mac.toLowerCase()) {
      fail(`interface ${env.ifname} has MAC ${link.mac}, expected ${podIface.mac}`);
    }
    // The kernel's side is canonical text already (shared/netlink formats it); the
    // prevResult's is made so.
    const have = new Set(listAddresses(nl, link.index).map((a) => a.cidr));
    for (const ip of prev.ips ?? []) {
      if (ip.interface !== undefined && ip.interface !== podIdx) continue;
      if (!have.has(canonical(ip.address))) fail(`address ${ip.address} not found on ${env.ifname}`);
    }
    // Each table of each family dumped once, not once per route.
    const tables = new Map<string, Route[]>();
    for (const r of prev.routes ?? []) {
      const n = parseCIDR(r.dst);
      const family = n?.ip.family ?? 4;
      const dst = n ? formatCIDR(n.ip, n.prefix) : r.dst;
      // Table 0 is the kernel's "unspecified": main.
      const want = r.table || RT_TABLE_MAIN;
      const id = `${family}/${want}`;
      let table = tables.get(id);
      if (!table) tables.set(id, (table = listRoutes(nl, family, want)));
      const found = table.some((k) => k.dst === dst && (!r.gw || k.gw === r.gw) && k.index === link.index);
      if (!found) fail(`route ${r.dst}${r.gw ? ` via ${r.gw}` : ""} not found on ${env.ifname}`);
    }
  });
}
