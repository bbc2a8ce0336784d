// The netlink tests' fixture: a fresh network namespace per test with a netlink socket open
// in it (through the native addon, which is why this is not part of netns.ts); both are gone
// after the test, which must leave nothing behind.
import { afterEach, beforeEach, expect } from "vitest";
import { NetlinkError, NetlinkSocket } from "../../shared/netlink/socket";
import { cleanupAll, createNetns, leftovers, netnsPath } from "./netns";

export function useNetnsSocket(role: string, setup: (nl: NetlinkSocket) => void = () => {}): { ns: () => string; nl: () => NetlinkSocket } {
  let ns = "";
  let nl: NetlinkSocket | undefined;
  beforeEach(() => {
    ns = createNetns(role);
    nl = NetlinkSocket.open(netnsPath(ns));
    setup(nl);
  });
  afterEach(() => {
    try {
      nl?.close();
    } finally {
      nl = undefined;
      ns = "";
      cleanupAll();
    }
    expect(leftovers()).toEqual([]);
  });
  return {
    ns: () => {
      if (!ns) throw new Error("no netns outside a test");
      return ns;
    },
    nl: () => {
      if (!nl) throw new Error("no socket outside a test");
      return nl;
    },
  };
}

/** The error `fn` throws, which must be a NetlinkError (the kernel's refusal). */
export function netlinkErrorOf(fn: () => unknown): NetlinkError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(NetlinkError);
    return e as NetlinkError;
  }
  throw new Error("expected the kernel to refuse");
}
