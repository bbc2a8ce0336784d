// loopback: brings `lo` up in the container (containerd requires this plugin).
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { Plugin } from "../../shared/cni/skeleton";
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

export const loopback: Plugin<LoopbackConf> = {
  name: "loopback",
  parseConfig: (raw) => ({ cniVersion: String(raw["cniVersion"]) }),
  add: ({ env, conf, prevResult }) => {
    withSocket(env.netns, (nl) => setLinkUp(nl, lo(nl, env.netns).index));
    // As the reference: report lo and its addresses (a chained prevResult wins).
    return (
      prevResult ?? {
        cniVersion: conf.cniVersion,
        interfaces: [{ name: "lo", mac: "00:00:00:00:00:00", sandbox: env.netns }],
        ips: [
          { address: "127.0.0.1/8", interface: 0 },
          { address: "::1/128", interface: 0 },
        ],
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
  check: ({ env }) =>
    withSocket(env.netns, (nl) => {
      if (!lo(nl, env.netns).up) throw new CniError(ErrorCode.Internal, "loopback interface is down");
    }),
};
