// The bridge plugin's network configuration: the reference plugin's keys, validated at
// the boundary so a bad config is one clear CNI error.
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { DNS } from "../../shared/cni/result";
import { compileValidator } from "../../shared/cni/validate";
import type { ChainRef } from "../../shared/firewall/index";
import { parseHostLocalConfig, type HostLocalConfig } from "../../ipam/host-local/index";
import { getRuntimeConfigKey } from "../../shared/cni/runtime-config";
import { parseMac } from "../../shared/mac";
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
  preserveDefaultVlan: boolean;
  enabledad: boolean;
  /** only the pod's own MAC may enter the bridge from its port (an nftables bridge filter) */
  macspoofchk: boolean;
  /** "" for a layer-2 network: no addresses, no gateway, no rules, only the wiring */
  ipam: { type: string };
  /** the config's own DNS settings, reported instead of the IPAM plugin's when set */
  dns?: DNS;
  /** the validated host-local config, when IPAM is host-local (parsed once, used by IPAM) */
  hostLocal?: HostLocalConfig;
  /** MAC for the container interface (its 6 bytes): runtimeConfig.mac, args.cni.mac or CNI_ARGS MAC= */
  mac?: Buffer;
  /**
   * Not a config key: the weft plugin's pointer to its agent's chain that marks the whole pod
   * CIDR for FORWARD accept, so a pod needs no mark of its own while a rule there marks the
   * pod's subnet (see PodRuleSpec.markedBy).
   */
  forwardMarkedBy?: ChainRef;
}

const validate = compileValidator<Partial<BridgeConf> & { ipam?: { type?: string }; runtimeConfig?: unknown; args?: { cni?: { mac?: string } } }>(
  bridgeSchema,
  "bridge",
);

export function parseBridgeConf(raw: Record<string, unknown>, cniArgs: Map<string, string>): BridgeConf {
  const c = validate(raw);
  if (c.hairpinMode && c.promiscMode) {
    throw new CniError(ErrorCode.InvalidConfig, "cannot set hairpin mode and promiscuous mode at the same time");
  }
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
    preserveDefaultVlan: c.preserveDefaultVlan ?? true,
    enabledad: c.enabledad ?? false,
    macspoofchk: c.macspoofchk ?? false,
    ipam: { type: c.ipam?.type ?? "" },
  };
  // As the reference: any of the keys counts as set, even an empty list.
  const dns = c.dns;
  if (dns && (dns.nameservers || dns.search || dns.options || dns.domain)) conf.dns = dns;
  // In-process IPAM config errors surface before anything touches the kernel.
  if (conf.ipam.type === "host-local") {
    conf.hostLocal = parseHostLocalConfig(raw["ipam"], conf.name, getRuntimeConfigKey(c.runtimeConfig, "ipRanges"));
  }
  // Precedence as in the reference: runtimeConfig, then args, then CNI_ARGS.
  const mac = getRuntimeConfigKey(c.runtimeConfig, "mac") ?? c.args?.cni?.mac ?? cniArgs.get("MAC");
  if (mac !== undefined) {
    // Parsed here, once: the bytes go to the kernel as they are.
    const invalid = () => new CniError(ErrorCode.InvalidConfig, `invalid MAC address "${String(mac)}"`);
    if (typeof mac !== "string") throw invalid();
    try {
      conf.mac = parseMac(mac);
    } catch {
      throw invalid();
    }
  }
  return conf;
}

