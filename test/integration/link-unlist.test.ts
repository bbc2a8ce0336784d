// A link delete that returns once the kernel has unlisted the link, leaving the kernel's
// RCU wait before it frees the device to a child process (DEL's veth delete): what the
// caller sees when it returns, a refusal, a send the kernel will not take, notifications
// lost to an overrun, no process to spare for the child, and what that child holds
// meanwhile.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, writeFileSync } from "node:fs";
import { expect, it } from "vitest";
import { attr, ifinfomsg, strz } from "../../shared/netlink/encoding";
import { linkNotificationName, unlistLinkByName } from "../../shared/netlink/link";
import { createNetns, linkNames, netnsPath, uniqueName } from "../helpers/netns";
import { netlinkErrorOf, useNetnsSocket } from "../helpers/netlink-socket";

// Each test's netns (`a` below) with a socket in it; both, and every netns a test makes, go after it.
const { ns, nl } = useNetnsSocket("ul");

/** A veth with its ends named `name` in netns `a` and `peer` in netns `b`. */
function veth(a: string, name: string, b: string, peer: string): void {
  execFileSync("ip", ["-n", a, "link", "add", name, "type", "veth", "peer", "name", peer, "netns", b]);
}

interface Child {
  /** its open fds' targets */
  fds: string[];
  /** its blocked signals (SigBlk) */
  blocked: bigint;
}

/** This process's children that are still running (not zombies), by pid. */
function liveChildren(): Map<number, Child> {
  const found = new Map<number, Child>();
  for (const task of readdirSync("/proc/self/task")) {
    for (const pid of readFileSync(`/proc/self/task/${task}/children`, "utf8").split(" ").filter(Boolean)) {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        // pid (comm) state …: comm may hold spaces and parentheses.
        if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
        const fds = readdirSync(`/proc/${pid}/fd`).map((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`));
        const blocked = BigInt(`0x${/^SigBlk:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]}`);
        found.set(Number(pid), { fds, blocked });
      } catch {
        // It exited while we looked.
      }
    }
  }
  return found;
}

it("returns with both ends of a veth gone, and false when there is no such link", () => {
  const a = ns();
  const b = createNetns("ulb");
  veth(a, "wul-pod", b, "wul-host");
  expect(unlistLinkByName(netnsPath(a), "wul-pod")).toBe(true);
  expect(linkNames(a)).not.toContain("wul-pod");
  expect(linkNames(b)).not.toContain("wul-host");
  // The name is free at once.
  veth(a, "wul-pod", b, "wul-host");
  expect(linkNames(a)).toContain("wul-pod");
  expect(unlistLinkByName(netnsPath(a), "wul-none")).toBe(false);
});

it("throws the kernel's refusal, leaving the link", () => {
  const e = netlinkErrorOf(() => unlistLinkByName(netnsPath(ns()), "lo"));
  expect(e.code).toBe("EOPNOTSUPP");
  expect(linkNames(ns())).toContain("lo");
});

it("reports a request the kernel will not take from the child at once, with its errno", () => {
  const RTM_GETLINK = 18;
  // Larger than the socket's send buffer: sendto itself fails.
  const e = netlinkErrorOf(() => nl().requestUntil("oversized", RTM_GETLINK, 0, [Buffer.alloc(1 << 20)], () => false));
  expect(e.code).toBe("EMSGSIZE");
});

it("still sees the request through when the socket lost notifications (an overrun)", () => {
  const [RTM_DELLINK, IFLA_IFNAME, RTNLGRP_LINK] = [17, 3, 1];
  const names = Array.from({ length: 150 }, (_, i) => `wul-o${i}`);
  nl().join(RTNLGRP_LINK);
  // More notifications than the socket's buffer holds, none read.
  execFileSync("ip", ["-n", ns(), "-batch", "-"], { input: names.map((n) => `link add ${n} type bridge\n`).join("") });
  const payload = [ifinfomsg.format({}), attr(IFLA_IFNAME, strz("wul-o0"))];
  nl().requestUntil("delete link wul-o0", RTM_DELLINK, 0, payload, (m) => m.type === RTM_DELLINK && linkNotificationName(m) === "wul-o0");
  expect(linkNames(ns())).not.toContain("wul-o0");
  expect(linkNames(ns())).toContain("wul-o1");
});

it("leaves the kernel's wait to a child holding no fd but its netlink socket and status pipe, and deaf to signals", () => {
  const a = ns();
  const b = createNetns("ulc");
  // The child lives on for the RCU wait (15-30 ms here); catch it alive at least once.
  let caught: Child | undefined;
  for (let i = 0; i < 20 && !caught; i++) {
    veth(a, `wul-c${i}`, b, `wul-h${i}`);
    const before = new Set(liveChildren().keys());
    expect(unlistLinkByName(netnsPath(a), `wul-c${i}`)).toBe(true);
    for (const [pid, child] of liveChildren()) if (!before.has(pid) && child.fds.length) caught = child;
  }
  expect(caught).toBeDefined();
  // The socket, and the pipe for a failed send's errno.
  expect(caught!.fds.map((f) => f.replace(/\d+/, "N")).sort()).toEqual(["pipe:[N]", "socket:[N]"]);
  // All but SIGKILL and SIGSTOP, which cannot be blocked.
  const unblockable = (1n << 8n) | (1n << 18n);
  expect(caught!.blocked | unblockable).toBe(0xffffffffffffffffn);
});

/**
 * The pids controller's directory holding this process, and the hierarchy's root
 * (cgroup v1, or v2 where the root hands the controller down).
 */
function pidsCgroup(): { root: string; own: string } {
  const mounts = readFileSync("/proc/self/mountinfo", "utf8").split("\n").map((l) => l.split(" "));
  const own = (controller: string) => readFileSync("/proc/self/cgroup", "utf8").split("\n").find((l) => l.split(":")[1] === controller)!.split(":")[2]!;
  const v1 = mounts.find((m) => m[m.indexOf("-") + 1] === "cgroup" && m.at(-1)!.split(",").includes("pids"));
  if (v1) return { root: v1[4]!, own: `${v1[4]}${own("pids")}` };
  const v2 = mounts.find((m) => m[m.indexOf("-") + 1] === "cgroup2")!;
  return { root: v2[4]!, own: `${v2[4]}${own("")}` };
}

it("sends the request itself, and waits, when no process can be spared (a pids limit)", () => {
  const a = ns();
  const b = createNetns("ulp");
  veth(a, "wul-p", b, "wul-q");
  const { root, own } = pidsCgroup();
  const limited = `${root}/${uniqueName("pids")}`;
  mkdirSync(limited);
  let deleted: boolean;
  let refused: number;
  try {
    // This process alone in a group that allows no further task.
    writeFileSync(`${limited}/cgroup.procs`, String(process.pid));
    try {
      writeFileSync(`${limited}/pids.max`, "0");
      deleted = unlistLinkByName(netnsPath(a), "wul-p");
    } finally {
      writeFileSync(`${own}/cgroup.procs`, String(process.pid));
    }
    refused = Number(/^max (\d+)$/m.exec(readFileSync(`${limited}/pids.events`, "utf8"))![1]);
  } finally {
    rmdirSync(limited);
  }
  expect(refused).toBeGreaterThan(0); // the clone was refused
  expect(deleted).toBe(true);
  expect(linkNames(a)).not.toContain("wul-p");
  expect(linkNames(b)).not.toContain("wul-q");
});
