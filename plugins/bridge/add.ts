// bridge ADD: bridge → veth pair → IPAM → NAT/forward rules → pod addresses and routes
// → gateway on the bridge. Every step registers its undo; a failure anywhere runs them
// in reverse, so a failed ADD leaves no veth, no reserved IP and no rule behind (and says
// so when an undo fails too: the runtime's DEL then removes the rest). A
// network without an IPAM type is layer 2: the wiring, the pod's link up (left down with
// disableContainerInterface), nothing more.
import type { PluginContext } from "../../shared/cni/skeleton";
import { rollBack } from "../../shared/attempt";
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { DNS, Interface, Result } from "../../shared/cni/result";
import { podKey } from "../../shared/firewall/common";
import { addPodRules, removePodRules } from "../../shared/firewall/index";
import { guardPort, unguardPort } from "../../shared/firewall/spoofcheck";
import { addPortVlan, addPortVlanRanges, deletePortVlan, setBridgePort } from "../../shared/netlink/bridge";
import { deleteLinkByName, type Link } from "../../shared/netlink/link";
import { addressOf } from "../../shared/ip";
import { parseMac } from "../../shared/mac";
import { withSocket } from "../../shared/netlink/socket";
import { ipamAdd, ipamCallOf, ipamDel } from "../../ipam/index";
import type { BridgeConf } from "./config";
import { enableHostSysctls, ensureBridge, ensureGatewayAddresses, usesVlans } from "./host";
import { configurePodInterface, createPodVeth, withDefaultRoutes, withGateways } from "./pod";

export function add(ctx: PluginContext<BridgeConf>): Result {
  const { env, conf } = ctx;
  // Refused here, as in the reference, not at parse time: DEL must still work for it.
  if (conf.hairpinMode && conf.promiscMode) {
    throw new CniError(ErrorCode.InvalidConfig, "cannot set hairpin mode and promiscuous mode at the same time");
  }
  if (conf.disableContainerInterface && conf.ipam.type) {
    throw new CniError(ErrorCode.InvalidConfig, "cannot use IPAM when disableContainerInterface is set");
  }
  let mac: Buffer | undefined;
  if (conf.mac !== undefined) {
    try {
      mac = parseMac(conf.mac);
    } catch {
      throw new CniError(ErrorCode.InvalidConfig, `invalid MAC address "${conf.mac}"`);
    }
  }
  return withSocket(undefined, (nl) => {
    const undo: Array<() => void> = [];
    try {
      const br = ensureBridge(nl, conf);
      const host = createPodVeth(nl, {
        netns: env.netns,
        ifname: env.ifname,
        mtu: conf.mtu,
        bridge: br,
        mac,
      });
      // Deleting the host end removes the container end with it.
      let vethGone = false;
      undo.push(() => {
        deleteLinkByName(nl, host.name);
        vethGone = true;
      });
      if (conf.hairpinMode || conf.portIsolation) setBridgePort(nl, host.index, { hairpin: conf.hairpinMode, isolated: conf.portIsolation });
      // The port's default VLAN goes first unless kept, as in the reference (so `vlan: 1`
      // stays); a bridge whose default PVID is not 1 has none to remove.
      if (usesVlans(conf) && !conf.preserveDefaultVlan) deletePortVlan(nl, host.index, 1);
      if (conf.vlan) {
        addPortVlan(nl, host.index, conf.vlan);
        if (conf.isGateway && conf.ipam.type) addPortVlan(nl, br.index, conf.vlan, { self: true });
      }
      // A trunk: its VLANs, tagged.
      if (conf.vlanTrunk.length) addPortVlanRanges(nl, host.index, conf.vlanTrunk);

      // macspoofchk: from the pod's port, only the pod's own MAC may enter the bridge.
      const guard = (pod: Link): void => {
        if (!conf.macspoofchk) return;
        const g = { key: podKey(conf.name, env.containerId, env.ifname), port: host.name, mac: pod.mac };
        guardPort(g);
        undo.push(() => unguardPort(g));
      };

      if (!conf.ipam.type) {
        const pod = configurePodInterface(env.netns, env.ifname, [], [], { enableDad: conf.enabledad, up: !conf.disableContainerInterface });
        guard(pod);
        return withDns({ cniVersion: conf.cniVersion, interfaces: interfacesOf(br, host, pod, env.netns) }, conf.dns);
      }

      const call = ipamCallOf(ctx);
      const ipam = ipamAdd(call);
      // Undone last, and only once no interface holds the address (as DEL does).
      undo.unshift(() => {
        if (vethGone) ipamDel(call);
      });
      if (!ipam.ips?.length) throw new CniError(ErrorCode.Internal, `IPAM plugin ${conf.ipam.type} returned no IP address`);
      const ips = withGateways(ipam.ips, conf.isGateway).map((ip) => ({ ...ip, interface: 2 }));
      const routes = withDefaultRoutes(ipam.routes ?? [], ips, conf.isDefaultGateway);

      const rule = { network: conf.name, containerId: env.containerId, ifname: env.ifname };
      // The firewall validates and normalises the addresses.
      const cidrs = ips.map((ip) => ip.address);
      addPodRules({ ...rule, cidrs, masquerade: conf.ipMasq, ...(conf.forwardMarkedBy ? { markedBy: conf.forwardMarkedBy } : {}) });
      undo.push(() => removePodRules({ ...rule, ips: cidrs.map(addressOf) }));

      const pod = configurePodInterface(env.netns, env.ifname, ips, routes, { enableDad: conf.enabledad });
      guard(pod);
      const bridge = conf.isGateway ? ensureGatewayAddresses(nl, br, conf, ips) : br;
      enableHostSysctls(ips, conf.isGateway);

      return withDns({ cniVersion: conf.cniVersion, interfaces: interfacesOf(bridge, host, pod, env.netns), ips, routes }, conf.dns ?? ipam.dns);
    } catch (e) {
      // Every step is undone even when one fails; the failure reported is the first one.
      rollBack(e, undo.reverse());
    }
  });
}

/** The result's interfaces, in the reference's order: bridge, host veth, pod interface (index 2). */
function interfacesOf(br: Link, host: Link, pod: Link, netns: string): Interface[] {
  return [
    { name: br.name, mac: br.mac },
    { name: host.name, mac: host.mac },
    { name: pod.name, mac: pod.mac, sandbox: netns },
  ];
}

function withDns(result: Result, dns: DNS | undefined): Result {
  return dns ? { ...result, dns } : result;
}
