// bridge DEL: best effort and idempotent. First the MAC spoof check's elements (by the
// pod's comment) and the pod's rules, found by the prevResult's
// addresses or else by the container ID in their comments, never by looking inside the
// netns (it may be gone): their nft batch, when there is one, runs while the veth is
// deleted. The veth delete returns once the kernel has unlisted both ends; its RCU wait
// before it frees them (15-30 ms here, which the Go plugin sits out) is left to a child
// process. The address goes last, once no interface holds it (the reference plugin also
// deletes the veth first): a veth that cannot be deleted keeps it until the runtime's
// next DEL.
import { allSteps } from "../../shared/attempt";
import type { PluginContext } from "../../shared/cni/skeleton";
import { podKey } from "../../shared/firewall/common";
import { removePodRules } from "../../shared/firewall/index";
import { finishUnguard, startUnguard } from "../../shared/firewall/spoofcheck";
import type { Running } from "../../shared/process";
import { unlistLinkByName } from "../../shared/netlink/link";
import { addressOf } from "../../shared/ip";
import { isNetnsGone } from "../../shared/netns";
import { ipamCallOf, ipamDel } from "../../ipam/index";
import type { BridgeConf } from "./config";

export function del(ctx: PluginContext<BridgeConf>): void {
  const { env, conf } = ctx;
  // A layer-2 network holds no address and no NAT or forward rule.
  const l3 = conf.ipam.type !== "";
  const ips = (ctx.prevResult?.ips ?? []).map((ip) => addressOf(ip.address));
  let key = "";
  let unguarding: Running | null = null;
  let vethGone = false;
  const deleteTheVeth = (): void => {
    deleteVeth(env.netns, env.ifname);
    vethGone = true;
  };
  allSteps(
    // The spoof check's batch, which waits on RCU, runs while the veth is deleted.
    () => {
      if (conf.macspoofchk) unguarding = startUnguard((key = podKey(conf.name, env.containerId, env.ifname)));
    },
    () =>
      l3
        ? removePodRules({ network: conf.name, containerId: env.containerId, ifname: env.ifname, ...(ips.length ? { ips } : {}) }, deleteTheVeth)
        : deleteTheVeth(),
    () => {
      if (unguarding) finishUnguard(key, unguarding);
    },
    () => {
      if (l3 && vethGone) ipamDel(ipamCallOf(ctx));
    },
  );
}

function deleteVeth(netns: string, ifname: string): void {
  if (!netns) return;
  try {
    // Deleting the container end removes the host end too. DEL is done once both are
    // unlisted; the kernel's RCU wait before it frees them is no part of it.
    unlistLinkByName(netns, ifname);
  } catch (e) {
    // The kernel destroyed the veth with the netns.
    if (!isNetnsGone(e)) throw e;
  }
}
