// Kernel notifications about what the agent programs: its device (RTNLGRP_LINK), the
// neighbor and FDB entries on it (RTNLGRP_NEIGH), and routes of its protocol
// (RTNLGRP_IPV4_ROUTE). A change made by hand is then undone within a poll rather than at
// the next resync. Polled from the event loop: the native transport is synchronous, and
// a few reads a second cost nothing while nothing happens.
import { linkNotifications } from "../shared/netlink/link";
import { neighborNotificationIndex } from "../shared/netlink/neighbor";
import { routeNotificationProtocol } from "../shared/netlink/route";
import { isErrno, NetlinkSocket, type NetlinkMessage } from "../shared/netlink/socket";

const RTNLGRP_LINK = 1;
const RTNLGRP_NEIGH = 3;
const RTNLGRP_IPV4_ROUTE = 7;
const POLL_MS = 200;

/** What the agent owns, as notifications name it. */
export interface Watched {
  /** the VXLAN device's name */
  device: string;
  /** its ifindex, once it exists */
  deviceIndex(): number | undefined;
  /** the protocol number on the agent's routes */
  routeProtocol: number;
}

export interface KernelWatch {
  /**
   * Drops the notifications received so far: called after a reconcile, so the changes it
   * made itself never trigger another (one that cannot settle would otherwise loop). A
   * change someone else made during that reconcile waits for the next resync.
   */
  discard(): void;
  stop(): void;
}

function concerns(w: Watched, msgs: NetlinkMessage[]): boolean {
  const index = w.deviceIndex();
  return (
    linkNotifications(msgs).some((n) => n.link.name === w.device) ||
    msgs.some((m) => (index !== undefined && neighborNotificationIndex(m) === index) || routeNotificationProtocol(m) === w.routeProtocol)
  );
}

/** Calls `onChange` (at most once per poll) when something `w` names is added, changed or deleted. */
export function watchKernel(w: Watched, onChange: () => void, onError: (message: string) => void): KernelWatch {
  const nl = NetlinkSocket.open();
  for (const group of [RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE]) nl.join(group);
  const timer = setInterval(() => {
    try {
      if (concerns(w, nl.pending())) onChange();
    } catch (e) {
      // ENOBUFS: notifications were dropped, so whatever they said may have happened.
      if (isErrno(e, "ENOBUFS")) onChange();
      else onError(`kernel watch: ${e instanceof Error ? e.message : String(e)}`);
    }
  }, POLL_MS);
  return {
    discard() {
      try {
        nl.pending();
      } catch {
        // ENOBUFS: dropped anyway
      }
    },
    stop() {
      clearInterval(timer);
      nl.close();
    },
  };
}
