// What a test run must leave on the host as it found it, read the way an operator would:
// global-host-check.ts compares it around the whole run.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { netnsNames } from "../../lab/exec";

const HOST_PATHS = ["/etc/cni", "/opt/cni", "/var/lib/cni", "/run/containerd", "/var/lib/containerd", "/opt/containerd", "/run/weft"];
const HOST_SYSCTLS = ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding", "net/bridge/bridge-nf-call-iptables", "net/bridge/bridge-nf-call-ip6tables"];

function listTree(p: string): string[] {
  if (!existsSync(p)) return [];
  const out = [p];
  try {
    for (const e of readdirSync(p, { withFileTypes: true })) {
      const sub = join(p, e.name);
      if (e.isDirectory()) out.push(...listTree(sub));
      else out.push(sub);
    }
  } catch {
    // not a directory
  }
  return out;
}

function pathsAndSysctls(): Record<string, string[]> {
  const snap: Record<string, string[]> = {};
  for (const p of HOST_PATHS) snap[p] = listTree(p);
  for (const k of HOST_SYSCTLS) {
    try {
      snap[k] = [readFileSync(`/proc/sys/${k}`, "utf8").trim()];
    } catch {
      snap[k] = ["(absent)"];
    }
  }
  return snap;
}

/** A command's output lines; a missing tool or a failure reads the same before and after. */
function lines(cmd: string, args: string[]): string[] {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    return [`(${cmd} failed)`];
  }
}

/** Processes outside our (the host's) network namespace: pod servers, pings and agents a test left. */
function processesInOtherNetns(): string[] {
  const root = readlinkSync("/proc/self/ns/net");
  const out: string[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) === root) continue;
      out.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim()}`);
    } catch {
      // exited meanwhile
    }
  }
  return out.sort();
}

/** The legacy ip(6)_tables tables the kernel lists for the root namespace (reading makes none). */
function legacyTables(v: "ip" | "ip6"): string[] {
  try {
    return readFileSync(`/proc/net/${v}_tables_names`, "utf8").split("\n").filter(Boolean).sort();
  } catch {
    return []; // no ip(6)_tables in this kernel
  }
}

/**
 * The CNI and containerd directories, the sysctls the plugins set, the root namespace's
 * netns, links, packet filter and cgroups, weft's files in `tmp`, and stray processes.
 */
export function hostSnapshot(tmp: string): Record<string, string[]> {
  return {
    ...pathsAndSysctls(),
    "network namespaces": netnsNames().sort(),
    "links in the root namespace": lines("ip", ["-o", "link", "show"]).map((l) => l.split(": ")[1]!.split("@")[0]!).sort(),
    "nftables tables in the root namespace": lines("nft", ["list", "tables"]).sort(),
    // Rules only: chain lines carry packet counters.
    "iptables-legacy rules in the root namespace": lines("iptables-legacy-save", []).filter((l) => l.startsWith("-A")),
    // A legacy table, once made (by any use), stays until reboot where the modules are built in.
    "iptables-legacy tables in the root namespace": (["ip", "ip6"] as const).flatMap((v) => legacyTables(v).map((t) => `${v} ${t}`)),
    "top-level cgroups": existsSync("/sys/fs/cgroup") ? readdirSync("/sys/fs/cgroup").sort() : [],
    [`weft's files in ${tmp}`]: existsSync(tmp) ? readdirSync(tmp).filter((f) => /^(weft|\.bun-)/.test(f)).sort() : [],
    "processes in other network namespaces": processesInOtherNetns(),
  };
}
