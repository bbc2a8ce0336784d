// Kernel notifications on a netlink socket, as the agent's kernel watch reads them: what
// arrived, and an overrun (the kernel dropped some because nobody read) reported as such,
// with the socket usable after it.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { afterEach, beforeEach, expect, it } from "vitest";
import { linkNotificationName } from "../../shared/netlink/link";
import { NetlinkSocket } from "../../shared/netlink/socket";
import { cleanupAll, createNetns, leftovers, netnsPath } from "../helpers/netns";

const RTNLGRP_LINK = 1;

let ns: string;
let nl: NetlinkSocket | undefined;
beforeEach(() => {
  ns = createNetns("nl");
  nl = NetlinkSocket.open(netnsPath(ns));
  nl.join(RTNLGRP_LINK);
});
afterEach(() => {
  try {
    nl?.close();
  } finally {
    nl = undefined;
    cleanupAll();
  }
  expect(leftovers()).toEqual([]);
});

const names = (s: NetlinkSocket | undefined) => {
  const { received, overrun } = s!.pending();
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
  // Each notification takes over 1 KB of the socket's receive buffer (net.core.rmem_default,
  // ~200 KB unless a host raised it): twice as many links as fit in it, plus some.
  const links = 2 * Math.ceil(Number(readFileSync("/proc/sys/net/core/rmem_default", "utf8")) / 1024) + 100;
  const batch = Array.from({ length: links }, (_, i) => `link add wnl-${i} type bridge`).join("\n");
  execFileSync("ip", ["-n", ns, "-batch", "-"], { input: `${batch}\n` });
  const first = names(nl);
  expect(first.overrun).toBe(true);
  expect(first.links.length).toBeLessThan(links);
  execFileSync("ip", ["-n", ns, "link", "add", "wnl-last", "type", "bridge"]);
  const after = names(nl);
  expect(after.overrun).toBe(false);
  expect(after.links).toContain("wnl-last");
});
