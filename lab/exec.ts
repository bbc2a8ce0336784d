// Running commands on this machine and inside network namespaces, and the environment of a
// CNI call, for the lab, the bench and the tests. Node built-ins only: importing this never
// loads weft's native addon.
import { spawnSync } from "node:child_process";

/** Runs a command; returns stdout, throws with stderr on failure. */
export function run(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** The Go reference plugins, from Debian's containernetworking-plugins (build/setup.sh). */
export const REFERENCE_BIN_DIR = "/usr/lib/cni";

/** Names of the network namespaces whose name starts with `prefix`. */
export function netnsNames(prefix = ""): string[] {
  return run("ip", "netns", "list")
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n !== "" && n.startsWith(prefix));
}

/** Runs a command inside netns `ns`; returns stdout, throws with stderr on failure. */
export function inNs(ns: string, cmd: string, ...args: string[]): string {
  return run("ip", "netns", "exec", ns, cmd, ...args);
}

/** Whether a command inside netns `ns` succeeds. */
export function tryInNs(ns: string, cmd: string, ...args: string[]): boolean {
  return spawnSync("ip", ["netns", "exec", ns, cmd, ...args]).status === 0;
}

/**
 * What a plugin call takes from our environment besides CNI_*: PATH, and TMPDIR (where
 * weft's executable unpacks its addon) when set.
 */
export function baseEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env["PATH"], ...(process.env["TMPDIR"] ? { TMPDIR: process.env["TMPDIR"] } : {}) };
}

/** The CNI_* variables a runtime sets for one plugin call (CNI_ARGS only when given). */
export function cniEnv(c: { command: string; containerId: string; netns: string; path: string; ifname?: string; args?: string }): NodeJS.ProcessEnv {
  return {
    CNI_COMMAND: c.command,
    CNI_CONTAINERID: c.containerId,
    CNI_NETNS: c.netns,
    CNI_IFNAME: c.ifname ?? "eth0",
    ...(c.args !== undefined ? { CNI_ARGS: c.args } : {}),
    CNI_PATH: c.path,
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
