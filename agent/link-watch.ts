// Link notifications from the kernel (RTNLGRP_LINK), so that the agent repairs its device
// the moment someone deletes or changes it rather than at the next resync. Polled from
// the event loop: the native transport is synchronous, and a few reads a second cost
// nothing while the watched device is quiet.
import { linkNotifications } from "../shared/netlink/link";
import { NetlinkSocket } from "../shared/netlink/socket";

const RTNLGRP_LINK = 1;
const POLL_MS = 200;

export interface LinkWatch {
  /**
   * Drops the notifications received so far: called after a reconcile, so the changes it
   * made itself never trigger another (one that cannot settle would otherwise loop). A
   * change someone else made during that reconcile waits for the next resync.
   */
  discard(): void;
  stop(): void;
}

/** Calls `onChange` (at most once per poll) when a link named in `names()` is added, changed or deleted. */
export function watchLinks(names: () => readonly string[], onChange: () => void, onError: (message: string) => void): LinkWatch {
  const nl = NetlinkSocket.open();
  nl.join(RTNLGRP_LINK);
  const timer = setInterval(() => {
    try {
      const wanted = names();
      if (linkNotifications(nl.pending()).some((n) => wanted.includes(n.link.name))) onChange();
    } catch (e) {
      // ENOBUFS: notifications were dropped, so whatever they said may have happened.
      if ((e as { code?: string }).code === "ENOBUFS") onChange();
      else onError(`link watch: ${e instanceof Error ? e.message : String(e)}`);
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
