// Host side of the bridge plugin: the bridge device, its gateway addresses and the
// host sysctls pod traffic needs.
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { IPConfig } from "../../shared/cni/result";
import { isErrno } from "../../shared/errno";
import { overlaps, parseCIDR } from "../../shared/ip";
import { addAddress, deleteAddress, listAddresses } from "../../shared/netlink/address";
import { createBridge, setVlanFiltering } from "../../shared/netlink/bridge";
import { getLinkByIndex, getLinkByName, setLinkUp, setMac, setPromisc, type Link } from "../../shared/netlink/link";
import type { NetlinkSocket } from "../../shared/netlink/socket";
import { randomBytes } from "../../shared/random";
import { setSysctl, writeSysctl } from "../../shared/sysctl";
import type { BridgeConf } from "./config";

/** The pod's bridge; `made`: weft made it just now (with a fixed MAC). */
export type Bridge = Link & { made: boolean };

/** Returns the bridge, creating it when missing. DEL never removes it (as the reference). */
export function ensureBridge(nl: NetlinkSocket, conf: BridgeConf): Bridge {
  let br = getLinkByName(nl, conf.bridge);
  const made = !br;
  if (!br) {
    try {
      // An explicit MAC: otherwise the bridge takes the lowest MAC among its ports and
      // changes it as pods come and go, leaving stale gateway ARP entries in every pod.
      createBridge(nl, conf.bridge, { mtu: conf.mtu, vlanFiltering: usesVlans(conf), mac: randomMac() });
    } catch (e) {
      // A concurrent ADD may have created it first.
      if (!isErrno(e, "EEXIST")) throw vlanUnsupported(e, conf);
    }
    br = getLinkByName(nl, conf.bridge);
    if (!br) throw new CniError(ErrorCode.Internal, `bridge "${conf.bridge}" vanished after creation`);
  } else if (br.kind !== "bridge") {
    throw new CniError(ErrorCode.Internal, `"${conf.bridge}" already exists but is not a bridge (kind ${br.kind ?? "none"})`);
  } else if (usesVlans(conf)) {
    try {
      setVlanFiltering(nl, br.index, true);
    } catch (e) {
      throw vlanUnsupported(e, conf);
    }
  }
  // On every ADD, as in the reference: a bridge made by an older weft, or by hand, gets it too.
  refuseRouterAds(conf.bridge, false);
  if (conf.promiscMode && !br.promisc) setPromisc(nl, br.index, true);
  if (!br.up) setLinkUp(nl, br.index);
  return { ...br, made };
}

/** A random locally administered unicast MAC, as the bytes the kernel takes. */
function randomMac(): Buffer {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return b;
}

export const usesVlans = (conf: BridgeConf): boolean => conf.vlan !== 0 || conf.vlanTrunk.length > 0;

function vlanUnsupported(e: unknown, conf: BridgeConf): unknown {
  if (!usesVlans(conf) || !isErrno(e, "EOPNOTSUPP")) return e;
  const key = conf.vlan ? `"vlan": ${conf.vlan}` : `"vlanTrunk"`;
  return new CniError(ErrorCode.Internal, `${key} needs bridge VLAN filtering, which this kernel does not support (CONFIG_BRIDGE_VLAN_FILTERING)`);
}

/**
 * Puts each gateway address on the bridge. Another IPv4 address, or an overlapping IPv6
 * one, is an error unless forceAddress, which replaces it (the reference's rule: one
 * IPv4 subnet per bridge, several IPv6 subnets if they don't overlap). A bridge given an
 * address also gets its MAC set explicitly, as the reference does: a bridge made by hand
 * would otherwise take the lowest MAC among its ports and change it as pods come and go,
 * leaving stale gateway ARP entries in every pod. Returns the bridge as it is now.
 */
export function ensureGatewayAddresses(nl: NetlinkSocket, br: Bridge, conf: BridgeConf, ips: IPConfig[]): Link {
  let added = false;
  for (const ip of ips) {
    const net = parseCIDR(ip.address);
    if (!ip.gateway || !net) continue;
    const want = `${ip.gateway}/${net.prefix}`;
    const wantNet = parseCIDR(want)!;
    const present = listAddresses(nl, br.index, wantNet.ip.family);
    if (present.some((a) => a.cidr === want)) continue;
    for (const a of present) {
      const have = parseCIDR(a.cidr)!;
      if (wantNet.ip.family === 6 && !overlaps(have, wantNet)) continue;
      if (!conf.forceAddress) {
        throw new CniError(ErrorCode.Internal, `"${conf.bridge}" already has an IP address different from ${want}`);
      }
      deleteAddress(nl, br.index, a.cidr);
    }
    try {
      addAddress(nl, br.index, want, { noDad: true });
      added = true;
    } catch (e) {
      // Another ADD on the same bridge may have added it in the meantime.
      if (!isErrno(e, "EEXIST")) throw e;
    }
  }
  // One weft made (here or by a concurrent ADD) has its MAC fixed already.
  if (!added || br.made) return br;
  // Its MAC now, with the pod's port on it: read before, a bridge whose ports had all
  // left showed none (all zeros), which the kernel refuses to set.
  const now = getLinkByIndex(nl, br.index) ?? br;
  setMac(nl, br.index, now.mac);
  return now;
}

/** Forwarding for the families in use; bridged pod traffic visible to iptables/nftables. */
export function enableHostSysctls(ips: IPConfig[], isGateway: boolean): void {
  if (isGateway) {
    const families = new Set(ips.map((i) => parseCIDR(i.address)?.ip.family));
    if (families.has(4)) writeSysctl("net/ipv4/ip_forward", "1");
    if (families.has(6)) writeSysctl("net/ipv6/conf/all/forwarding", "1");
  }
  // Present only when br_netfilter is loaded; without it bridged traffic skips the
  // FORWARD hook anyway, so there is nothing to enable.
  writeSysctl("net/bridge/bridge-nf-call-iptables", "1");
  writeSysctl("net/bridge/bridge-nf-call-ip6tables", "1");
}

/**
 * A host-side link's routes are the plugin's: no router advertisement may add any, as the
 * reference sets it. Best effort, as there: on a read-only /proc/sys (or a host without
 * IPv6) the link works all the same. `fresh`: a link just made, whose key needs no reading first.
 */
export function refuseRouterAds(link: string, fresh: boolean): void {
  try {
    (fresh ? setSysctl : writeSysctl)(`net/ipv6/conf/${link}/accept_ra`, "0");
  } catch {
    // as above
  }
}
