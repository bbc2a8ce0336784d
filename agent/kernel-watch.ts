// Kernel notifications about what the agent programs: its device (RTNLGRP_LINK), the
// device's address (RTNLGRP_IPV4_IFADDR), the neighbor and FDB entries on it
// (RTNLGRP_NEIGH), routes of its protocol (RTNLGRP_IPV4_ROUTE), and the nf_tables objects
// it owns or reads (NFNLGRP_NFTABLES: its
// table, and iptables' FORWARD chain, whose policy Docker may turn to DROP). A change made
// by hand is then undone within a poll rather than at the next resync. Polled from the
// event loop: the native transport is synchronous, and a few reads a second cost nothing
// while nothing happens. (iptables-legacy sends no notifications: the resync covers it.)
import { messageOf } from "../shared/cni/errors";
import { addressNotificationIndex } from "../shared/netlink/address";
import { linkNotificationName } from "../shared/netlink/link";
import { neighborNotificationIndex } from "../shared/netlink/neighbor";
import { NFNLGRP_NFTABLES, nftChangeOf, openNetfilter, type NftChange } from "../shared/netlink/nftables";
import { routeNotificationProtocol } from "../shared/netlink/route";
import { NetlinkSocket, type NetlinkMessage } from "../shared/netlink/socket";

const RTNLGRP_LINK = 1;
const RTNLGRP_NEIGH = 3;
const RTNLGRP_IPV4_IFADDR = 5;
const RTNLGRP_IPV4_ROUTE = 7;
const POLL_MS = 200;

/** What the agent owns or depends on (iptables' filter FORWARD), as notifications name it. */
export interface Watched {
  /** the VXLAN device's name */
  device: string;
  /** its ifindex, once it exists */
  deviceIndex(): number | undefined;
  /** the protocol number on the agent's routes */
  routeProtocol: number;
  /** nf_tables tables, or chains when `chain` is set, whose every change matters */
  nft: NftChange[];
}

export interface KernelWatch {
  /**
   * Reads the notifications received so far, and says whether any concerns what is
   * watched: called after a reconcile, which cannot tell those of its own changes from
   * those of a change someone made while it ran.
   */
  drain(): boolean;
  stop(): void;
}

function nftConcerns(w: Watched, msgs: NetlinkMessage[]): boolean {
  return msgs.some((m) => {
    const c = nftChangeOf(m);
    return c !== null && w.nft.some((x) => x.family === c.family && x.table === c.table && (x.chain === undefined || x.chain === c.chain));
  });
}

function concerns(w: Watched, msgs: NetlinkMessage[]): boolean {
  const index = w.deviceIndex();
  return msgs.some(
    (m) =>
      linkNotificationName(m) === w.device ||
      (index !== undefined && (neighborNotificationIndex(m) === index || addressNotificationIndex(m) === index)) ||
      routeNotificationProtocol(m) === w.routeProtocol,
  );
}

/** Calls `onChange` (at most once per poll) when something `w` names is added, changed or deleted. */
export function watchKernel(w: Watched, onChange: () => void, onError: (message: string) => void): KernelWatch {
  const nl = NetlinkSocket.open();
  const watched: Array<[NetlinkSocket, (w: Watched, msgs: NetlinkMessage[]) => boolean]> = [[nl, concerns]];
  try {
    for (const group of [RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE]) nl.join(group);
  } catch (e) {
    nl.close();
    throw e;
  }
  // Without nfnetlink the agent still runs: its packet filter then fails on every reconcile
  // and says so, and nothing of it needs watching.
  let nf: NetlinkSocket | undefined;
  try {
    nf = openNetfilter();
    nf.join(NFNLGRP_NFTABLES);
    watched.push([nf, nftConcerns]);
  } catch (e) {
    nf?.close();
    onError(`kernel watch: no nftables notifications (${messageOf(e)}); FORWARD policy changes wait for the resync`);
  }
  const drain = (): boolean => {
    let changed = false;
    // Both sockets are read each time, so neither queue fills up while the other speaks.
    for (const [sock, matters] of watched) {
      try {
        // Notifications dropped (overrun) or left queued (more) may have said anything.
        const { received, overrun, more } = sock.pending();
        if (matters(w, received) || overrun || more) changed = true;
      } catch (e) {
        onError(`kernel watch: ${messageOf(e)}`);
      }
    }
    return changed;
  };
  const timer = setInterval(() => {
    if (drain()) onChange();
  }, POLL_MS);
  return {
    drain,
    stop() {
      clearInterval(timer);
      for (const [sock] of watched) sock.close();
    },
  };
}
