// Kernel notifications on a netlink socket, as the agent's kernel watch reads them: what
// arrived, an overrun (the kernel dropped some because nobody read) reported as such, with
// the socket usable after it, and a cap on the reads one call makes.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { linkNotificationName } from "../../shared/netlink/link";
import { NetlinkSocket } from "../../shared/netlink/socket";
import { useNetnsSocket } from "../helpers/netlink-socket";

const RTNLGRP_LINK = 1;

const { ns, nl } = useNetnsSocket("nl", (s) => s.join(RTNLGRP_LINK));

const names = (s: NetlinkSocket, maxReads?: number) => {
  const { received, overrun, more } = s.pending(maxReads);
  return { links: received.map(linkNotificationName), overrun, more };
};
const none = { links: [], overrun: false, more: false };

it("returns the notifications received so far, and nothing more", () => {
  expect(names(nl())).toEqual(none);
  execFileSync("ip", ["-n", ns(), "link", "add", "wnl-a", "type", "bridge"]);
  execFileSync("ip", ["-n", ns(), "link", "del", "wnl-a"]);
  const got = names(nl());
  expect(got.overrun).toBe(false);
  expect(got.links.length).toBeGreaterThanOrEqual(2); // its creation and its deletion
  expect(new Set(got.links)).toEqual(new Set(["wnl-a"]));
  expect(names(nl())).toEqual(none);
});

it("stops at the cap with the rest still queued for the next call", () => {
  const batch = Array.from({ length: 10 }, (_, i) => `link add wnl-${i} type bridge`).join("\n");
  execFileSync("ip", ["-n", ns(), "-batch", "-"], { input: `${batch}\n` });
  const first = names(nl(), 4);
  expect(first.more).toBe(true);
  expect(first.links.length).toBeGreaterThan(0);
  const rest = names(nl());
  expect(rest.more).toBe(false);
  const made = Array.from({ length: 10 }, (_, i) => `wnl-${i}`);
  // Every creation announced over the two calls: none lost at the cap.
  expect(new Set([...first.links, ...rest.links].filter((n) => n !== null && made.includes(n)))).toEqual(new Set(made));
  expect(names(nl())).toEqual(none);
});

it("reports an overrun, then reads on to what is still queued", () => {
  // Each notification takes over 1 KB of the socket's receive buffer (net.core.rmem_default,
  // ~200 KB unless a host raised it): twice as many links as fit in it, plus some.
  const links = 2 * Math.ceil(Number(readFileSync("/proc/sys/net/core/rmem_default", "utf8")) / 1024) + 100;
  const batch = Array.from({ length: links }, (_, i) => `link add wnl-${i} type bridge`).join("\n");
  execFileSync("ip", ["-n", ns(), "-batch", "-"], { input: `${batch}\n` });
  const first = names(nl());
  expect(first.overrun).toBe(true);
  expect(first.links.length).toBeLessThan(links);
  execFileSync("ip", ["-n", ns(), "link", "add", "wnl-last", "type", "bridge"]);
  const after = names(nl());
  expect(after.overrun).toBe(false);
  expect(after.links).toContain("wnl-last");
});
