// bridge ADD: bridge → veth pair → IPAM → NAT/forward rules → pod addresses and routes
// → gateway on the bridge. Every step registers its undo; a failure anywhere runs them
// in reverse, so a failed ADD leaves no veth, no reserved IP and no rule behind.
import type { PluginContext } from "../../shared/cni/skeleton";
import type { Result } from "../../shared/cni/result";
import { addPodRules, removePodRules } from "../../shared/firewall/index";
import { addPortVlan, deletePortVlan, setHairpin } from "../../shared/netlink/bridge";
import { deleteLinkByName } from "../../shared/netlink/link";
import { addressOf } from "../../shared/ip";
import { withSocket } from "../../shared/netlink/socket";
import { ipamAdd, ipamCallOf, ipamDel } from "../../ipam/index";
import type { BridgeConf } from "./config";
import { enableHostSysctls, ensureBridge, ensureGatewayAddresses } from "./host";
import { configurePodInterface, createPodVeth, withDefaultRoutes, withGateways } from "./pod";

export function add(ctx: PluginContext<BridgeConf>): Result {
  const { env, conf } = ctx;
  return withSocket(undefined, (nl) => {
    const undo: Array<() => void> = [];
    try {
      const br = ensureBridge(nl, conf);
      const host = createPodVeth(nl, {
        netns: env.netns,
        ifname: env.ifname,
        mtu: conf.mtu,
        bridge: br,
        ...(conf.mac ? { mac: conf.mac } : {}),
      });
      // Deleting the host end removes the container end with it.
      let vethGone = false;
      undo.push(() => {
        deleteLinkByName(nl, host.name);
        vethGone = true;
      });
      if (conf.hairpinMode) setHairpin(nl, host.index, true);
      if (conf.vlan) {
        addPortVlan(nl, host.index, conf.vlan);
        if (!conf.preserveDefaultVlan) deletePortVlan(nl, host.index, 1);
        if (conf.isGateway) addPortVlan(nl, br.index, conf.vlan, { self: true });
      }

      const call = ipamCallOf(ctx);
      const ipam = ipamAdd(call);
      // Undone last, and only once no interface holds the address (as DEL does).
      undo.unshift(() => {
        if (vethGone) ipamDel(call);
      });
      const ips = withGateways(ipam.ips ?? [], conf.isGateway).map((ip) => ({ ...ip, interface: 2 }));
      const routes = withDefaultRoutes(ipam.routes ?? [], ips, conf.isDefaultGateway);

      const rule = { network: conf.name, containerId: env.containerId, ifname: env.ifname };
      // The firewall validates and normalises the addresses.
      const cidrs = ips.map((ip) => ip.address);
      addPodRules({ ...rule, cidrs, masquerade: conf.ipMasq, ...(conf.forwardMarkedBy ? { markedBy: conf.forwardMarkedBy } : {}) });
      undo.push(() => removePodRules({ ...rule, ips: cidrs.map(addressOf) }));

      const pod = configurePodInterface(env.netns, env.ifname, ips, routes, { enableDad: conf.enabledad });
      if (conf.isGateway) ensureGatewayAddresses(nl, br, conf, ips);
      enableHostSysctls(ips, conf.isGateway);

      const result: Result = {
        cniVersion: conf.cniVersion,
        interfaces: [
          { name: br.name, mac: br.mac },
          { name: host.name, mac: host.mac },
          { name: pod.name, mac: pod.mac, sandbox: env.netns },
        ],
        ips,
        routes,
      };
      if (ipam.dns) result.dns = ipam.dns;
      return result;
    } catch (e) {
      for (const u of undo.reverse()) {
        try {
          u();
        } catch {
          // best effort: report the original failure, not a cleanup one
        }
      }
      throw e;
    }
  });
}
