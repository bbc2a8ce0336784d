// bridge DEL: best effort and idempotent. The IP is released and the pod's rules removed
// even when the netns is already gone: the rules are found by the released IPs (or the
// prevResult, or the container ID), never by looking inside the netns.
import type { PluginContext } from "../../shared/cni/skeleton";
import { removePodRules } from "../../shared/firewall/index";
import { deleteLinkByName } from "../../shared/netlink/link";
import { withSocket } from "../../shared/netlink/socket";
import { addressOf } from "../../shared/ip";
import { isNetnsGone } from "../../shared/netns";
import { ipamCallOf, ipamDel } from "../../ipam/index";
import type { BridgeConf } from "./config";

export function del(ctx: PluginContext<BridgeConf>): void {
  const { env, conf } = ctx;
  const released = ipamDel(ipamCallOf(ctx));
  // The firewall validates and normalises the addresses.
  const ips = released.length ? released : (ctx.prevResult?.ips ?? []).map((ip) => addressOf(ip.address));
  const ref = { network: conf.name, containerId: env.containerId, ifname: env.ifname, ...(ips.length ? { ips } : {}) };
  removePodRules(ref, () => deleteVeth(env.netns, env.ifname));
}

function deleteVeth(netns: string, ifname: string): void {
  if (!netns) return;
  try {
    // Deleting the container end removes the host end too.
    withSocket(netns, (nl) => deleteLinkByName(nl, ifname));
  } catch (e) {
    // The kernel destroyed the veth with the netns.
    if (!isNetnsGone(e)) throw e;
  }
}
