// Kernel notifications on a netlink socket, as the agent's kernel watch reads them: what
// arrived, and an overrun (the kernel dropped some because nobody read) reported as such,
// with the socket usable after it.
import { execFileSync } from "node:child_process";
import { afterEach, beforeEach, expect, it } from "vitest";
import { linkNotificationName } from "../../shared/netlink/link";
import { NetlinkSocket } from "../../shared/netlink/socket";
import { cleanupAll, createNetns, leftovers, netnsPath } from "../helpers/netns";

const RTNLGRP_LINK = 1;

let ns: string;
let nl: NetlinkSocket;
beforeEach(() => {
  ns = createNetns("nl");
  nl = NetlinkSocket.open(netnsPath(ns));
  nl.join(RTNLGRP_LINK);
});
afterEach(() => {
  nl.close();
  cleanupAll();
  expect(leftovers()).toEqual([]);
});

const names = (s: NetlinkSocket) => {
  const { received, overrun } = s.pending();
  return { links: received.map(linkNotificationName), overrun };
};

it("returns the notifications received so far, and nothing more", () => {
  expect(names(nl)).toEqual({ links: [], overrun: false });
  execFileSync("ip", ["-n", ns, "link", "add", "wnl-a", "type", "bridge"]);
  execFileSync("ip", ["-n", ns, "link", "del", "wnl-a"]);
  const got = names(nl);
  expect(got.overrun).toBe(false);
  expect(got.links.length).toBeGreaterThanOrEqual(2); // its creation and its deletion
  expect(new Set(got.links)).toEqual(new Set(["wnl-a"]));
  expect(names(nl)).toEqual({ links: [], overrun: false });
});

it("reports an overrun, then reads on to what is still queued", () => {
  // ~1 KB per notification: 600 links overflow the default receive buffer (~200 KB).
  const batch = Array.from({ length: 600 }, (_, i) => `link add wnl-${i} type bridge`).join("\n");
  execFileSync("ip", ["-n", ns, "-batch", "-"], { input: `${batch}\n` });
  const first = names(nl);
  expect(first.overrun).toBe(true);
  expect(first.links.length).toBeLessThan(600);
  execFileSync("ip", ["-n", ns, "link", "add", "wnl-last", "type", "bridge"]);
  const after = names(nl);
  expect(after.overrun).toBe(false);
  expect(after.links).toContain("wnl-last");
});
