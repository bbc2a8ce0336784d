// loopback: brings `lo` up in the container (containerd requires this plugin).
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { IPConfig } from "../../shared/cni/result";
import type { Plugin } from "../../shared/cni/skeleton";
import { listAddresses } from "../../shared/netlink/address";
import { getLinkByName, setLinkUp, type Link } from "../../shared/netlink/link";
import { withSocket, type NetlinkSocket } from "../../shared/netlink/socket";
import { isNetnsGone } from "../../shared/netns";

interface LoopbackConf {
  cniVersion: string;
}

function lo(nl: NetlinkSocket, netns: string): Link {
  const link = getLinkByName(nl, "lo");
  if (!link) throw new CniError(ErrorCode.Internal, `no loopback device in ${netns}`);
  return link;
}

/**
 * lo's first IPv4 and first IPv6 address, as the reference reports them (IPv6 may be off
 * in the netns); any that is not a loopback address is an error, as there.
 */
function loopbackAddresses(nl: NetlinkSocket, index: number): IPConfig[] {
  const ips: IPConfig[] = [];
  let v4 = false;
  let v6 = false;
  // One dump of both families: IPv4's come first.
  for (const a of listAddresses(nl, index)) {
    const loopback = a.family === 4 ? a.cidr.startsWith("127.") : a.cidr.startsWith("::1/");
    if (!loopback) throw new CniError(ErrorCode.Internal, `loopback interface found with non-loopback address ${a.cidr}`);
    if (a.family === 4 ? v4 : v6) continue;
    if (a.family === 4) v4 = true;
    else v6 = true;
    ips.push({ address: a.cidr, interface: 0 });
  }
  return ips;
}

export const loopback: Plugin<LoopbackConf> = {
  name: "loopback",
  knownArgs: "any",
  entersNetns: true,
  parseConfig: (raw) => ({ cniVersion: String(raw["cniVersion"]) }),
  add: ({ env, conf, prevResult }) => {
    const ips = withSocket(env.netns, (nl) => {
      const link = lo(nl, env.netns);
      setLinkUp(nl, link.index);
      return loopbackAddresses(nl, link.index);
    });
    // As the reference: report lo and the addresses it has (a chained prevResult wins).
    return (
      prevResult ?? {
        cniVersion: conf.cniVersion,
        interfaces: [{ name: "lo", mac: "00:00:00:00:00:00", sandbox: env.netns }],
        ...(ips.length ? { ips } : {}),
      }
    );
  },
  del: ({ env }) => {
    if (!env.netns) return;
    try {
      withSocket(env.netns, (nl) => setLinkUp(nl, lo(nl, env.netns).index, false));
    } catch (e) {
      // DEL is best effort: a netns already gone needs no loopback taken down.
      if (!isNetnsGone(e)) throw e;
    }
  },
  check: ({ env }) => {
    withSocket(env.netns, (nl) => {
      if (!lo(nl, env.netns).up) throw new CniError(ErrorCode.Internal, "loopback interface is down");
    });
  },
};
