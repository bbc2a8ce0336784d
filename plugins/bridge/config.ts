// The bridge plugin's network configuration: the reference plugin's keys, validated at
// the boundary so a bad config is one clear CNI error.
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { DNS } from "../../shared/cni/result";
import { compileValidator } from "../../shared/cni/validate";
import type { ChainRef } from "../../shared/firewall/index";
import { parseHostLocalConfig, type HostLocalConfig } from "../../ipam/host-local/index";
import { getRuntimeConfigKey } from "../../shared/cni/runtime-config";
import { bridgeSchema } from "./schema";

export interface BridgeConf {
  cniVersion: string;
  name: string;
  type: string;
  bridge: string;
  isGateway: boolean;
  isDefaultGateway: boolean;
  forceAddress: boolean;
  ipMasq: boolean;
  mtu: number;
  hairpinMode: boolean;
  promiscMode: boolean;
  vlan: number;
  /** the trunk's VLANs (tagged on the pod's port) as inclusive [first, last] ranges, merged and sorted */
  vlanTrunk: Array<[number, number]>;
  preserveDefaultVlan: boolean;
  enabledad: boolean;
  /** only the pod's own MAC may enter the bridge from its port (an nftables bridge filter) */
  macspoofchk: boolean;
  /** the pod's port is isolated: it reaches the bridge and non-isolated ports, no other pod */
  portIsolation: boolean;
  /** layer 2 only: the pod's interface is left down, for its workload to bring up */
  disableContainerInterface: boolean;
  /** "" for a layer-2 network: no addresses, no gateway, no rules, only the wiring */
  ipam: { type: string };
  /** the config's own DNS settings, reported instead of the IPAM plugin's when set */
  dns?: DNS;
  /** the validated host-local config, when IPAM is host-local (parsed once, used by IPAM) */
  hostLocal?: HostLocalConfig;
  /** MAC asked for the container interface (runtimeConfig.mac, args.cni.mac or CNI_ARGS MAC=), as text: ADD parses it */
  mac?: string;
  /**
   * Not a config key: the weft plugin's pointer to its agent's chain that marks the whole pod
   * CIDR for FORWARD accept, so a pod needs no mark of its own while a rule there marks the
   * pod's subnet (see PodRuleSpec.markedBy).
   */
  forwardMarkedBy?: ChainRef;
}

interface TrunkItem {
  minID?: number;
  maxID?: number;
  id?: number;
}

/** vlanTrunk's items (a minID-maxID range, an id, or both), checked as the reference does. */
function trunkRanges(items: TrunkItem[] | undefined): Array<[number, number]> {
  // Most networks have no trunk: nothing of the rest on their every call.
  if (!items?.length) return [];
  const bad = (msg: string): never => {
    throw new CniError(ErrorCode.InvalidConfig, msg);
  };
  const valid = (v: number) => v > 0 && v <= 4094;
  const ranges: Array<[number, number]> = [];
  for (const { minID, maxID, id } of items) {
    if (minID !== undefined && maxID !== undefined) {
      if (!valid(minID)) bad("incorrect trunk minID parameter");
      if (!valid(maxID)) bad("incorrect trunk maxID parameter");
      if (maxID < minID) bad("minID is greater than maxID in trunk parameter");
      ranges.push([minID, maxID]);
    } else if (minID !== undefined || maxID !== undefined) {
      bad(`minID and maxID should be configured simultaneously, ${minID === undefined ? "minID" : "maxID"} is missing`);
    }
    if (id !== undefined) {
      if (!valid(id)) bad("incorrect trunk id parameter");
      ranges.push([id, id]);
    }
  }
  ranges.sort((a, b) => a[0] - b[0]);
  // Overlapping or adjacent ranges merge: the port's one request carries each range left once.
  const merged: Array<[number, number]> = [];
  for (const r of ranges) {
    const last = merged[merged.length - 1];
    if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
    else merged.push([r[0], r[1]]);
  }
  return merged;
}

const validate = compileValidator<Omit<Partial<BridgeConf>, "vlanTrunk"> & { vlanTrunk?: TrunkItem[]; ipam?: { type?: string }; runtimeConfig?: unknown; args?: { cni?: { mac?: string } } }>(
  bridgeSchema,
  "bridge",
);

export function parseBridgeConf(raw: Record<string, unknown>, cniArgs: Map<string, string>): BridgeConf {
  const c = validate(raw);
  const isDefaultGateway = c.isDefaultGateway ?? false;
  const conf: BridgeConf = {
    cniVersion: String(raw["cniVersion"]),
    name: String(raw["name"]),
    type: String(raw["type"]),
    bridge: c.bridge ?? "cni0",
    // A default gateway must be a gateway (as in the reference plugin).
    isGateway: (c.isGateway ?? false) || isDefaultGateway,
    isDefaultGateway,
    forceAddress: c.forceAddress ?? false,
    ipMasq: c.ipMasq ?? false,
    mtu: c.mtu || 1500,
    hairpinMode: c.hairpinMode ?? false,
    promiscMode: c.promiscMode ?? false,
    vlan: c.vlan ?? 0,
    vlanTrunk: trunkRanges(c.vlanTrunk),
    preserveDefaultVlan: c.preserveDefaultVlan ?? true,
    enabledad: c.enabledad ?? false,
    macspoofchk: c.macspoofchk ?? false,
    portIsolation: c.portIsolation ?? false,
    disableContainerInterface: c.disableContainerInterface ?? false,
    ipam: { type: c.ipam?.type ?? "" },
  };
  // The reference's port is an access port (vlan) or a trunk (vlanTrunk), never both.
  if (conf.vlan && conf.vlanTrunk.length) throw new CniError(ErrorCode.InvalidConfig, "cannot set vlan and vlanTrunk at the same time");
  // As the reference: any of the keys counts as set, even an empty list.
  const dns = c.dns;
  if (dns && (dns.nameservers || dns.search || dns.options || dns.domain)) conf.dns = dns;
  // In-process IPAM config errors surface before anything touches the kernel.
  if (conf.ipam.type === "host-local") {
    conf.hostLocal = parseHostLocalConfig(raw["ipam"], conf.name, getRuntimeConfigKey(c.runtimeConfig, "ipRanges"));
  }
  // Precedence as in the reference: runtimeConfig, then args, then CNI_ARGS; an empty value is no request.
  const asked = (m: unknown): string | undefined => (typeof m === "string" && m !== "" ? m : undefined);
  const mac = asked(getRuntimeConfigKey(c.runtimeConfig, "mac")) ?? asked(c.args?.cni?.mac) ?? asked(cniArgs.get("MAC"));
  if (mac !== undefined) conf.mac = mac;
  return conf;
}

