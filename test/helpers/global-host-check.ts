// Vitest global setup: the whole run must leave the host as it found it. Each test removes
// what it made (and checks its own prefix); this looks at everything once more, after the
// last test: namespaces, the root namespace's links, nftables tables and ip_forward, the
// real CNI directories, weft's state dir, weft's files in /tmp, and running agents.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";

function lines(cmd: string, args: string[]): string[] {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean);
  } catch {
    return ["(could not run " + [cmd, ...args].join(" ") + ")"];
  }
}

const listing = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir).sort() : ["(absent)"]);

function snapshot(tmp: string): Record<string, string[]> {
  return {
    "network namespaces": lines("ip", ["netns", "list"]).map((l) => l.split(" ")[0]!).sort(),
    "links in the root namespace": lines("ip", ["-o", "link", "show"]).map((l) => l.split(": ")[1]!.split("@")[0]!).sort(),
    "nftables tables in the root namespace": lines("nft", ["list", "tables"]).sort(),
    "net.ipv4.ip_forward": [readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim()],
    "/etc/cni/net.d": listing("/etc/cni/net.d"),
    "/opt/cni/bin": listing("/opt/cni/bin"),
    "/var/lib/cni": listing("/var/lib/cni"),
    "/run/weft": listing("/run/weft"),
    // The run's own TMPDIR (global-tmpdir.ts) is gone by now: its teardown runs first.
    [`weft's files in ${tmp}`]: listing(tmp).filter((f) => /^(weft|\.bun-)/.test(f)),
    "weft agents running": lines("pgrep", ["-af", "weft agent"]).filter((l) => !l.includes("pgrep")),
  };
}

export default function setup(): () => void {
  // Read before global-tmpdir.ts points TMPDIR into the run's own directory.
  const tmp = tmpdir();
  const before = snapshot(tmp);
  return () => {
    const after = snapshot(tmp);
    const changed: string[] = [];
    for (const [what, was] of Object.entries(before)) {
      const now = after[what]!;
      const gone = was.filter((x) => !now.includes(x));
      const added = now.filter((x) => !was.includes(x));
      if (gone.length || added.length) {
        changed.push(`${what}:${added.length ? ` left ${added.join(", ")}` : ""}${gone.length ? ` removed ${gone.join(", ")}` : ""}`);
      }
    }
    if (changed.length) {
      // Vitest reports a teardown's error but still exits 0: fail the run ourselves.
      process.exitCode = 1;
      throw new Error(`the test run changed the host:\n  ${changed.join("\n  ")}`);
    }
  };
}
