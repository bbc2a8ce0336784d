// bridge DEL: best effort and idempotent. The veth goes before the address, as in the
// reference plugin, so an address is free again only once no interface holds it. The IP
// is released and the pod's rules removed even when the netns is already gone: the rules
// are found by the released IPs (or the prevResult, or the container ID), never by looking
// inside the netns. Each step runs even when one before it failed.
import { allSteps } from "../../shared/attempt";
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
  // The firewall validates and normalises the addresses.
  const prevIps = (ctx.prevResult?.ips ?? []).map((ip) => addressOf(ip.address));
  const rulesOf = (ips: string[]) => ({ network: conf.name, containerId: env.containerId, ifname: env.ifname, ...(ips.length ? { ips } : {}) });
  const veth = () => deleteVeth(env.netns, env.ifname);
  if (conf.ipMasq) {
    // The pod has NAT rules. Their nft batch waits out an RCU grace period, as the veth
    // delete does, so the batch starts first and the two waits overlap (~20 ms less).
    allSteps(
      () => removePodRules(rulesOf(prevIps), veth),
      () => ipamDel(ipamCallOf(ctx)),
    );
    return;
  }
  // Forward marks at most (where FORWARD drops), found by the released addresses.
  let released: string[] = [];
  allSteps(
    veth,
    () => {
      released = ipamDel(ipamCallOf(ctx));
    },
    () => removePodRules(rulesOf(released.length ? released : prevIps)),
  );
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
