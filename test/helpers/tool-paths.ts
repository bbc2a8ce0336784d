// PATHs for tests that choose which packet-filter tools a plugin finds: a directory of
// links to chosen binaries, or of wrappers that log each call. They live in one scratch
// directory per test file, which cleanupToolPaths() removes.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

let scratch: string | undefined;

function scratchDir(): string {
  scratch ??= mkdtempSync(join(tmpdir(), "weft-paths-"));
  return scratch;
}

/** A directory to use as PATH holding only `links` (name → target binary). */
export function pathWith(name: string, links: Record<string, string>): string {
  const dir = join(scratchDir(), name);
  mkdirSync(dir, { recursive: true });
  for (const [link, target] of Object.entries(links)) symlinkSync(target, join(dir, link));
  return dir;
}

/**
 * A bin dir whose `plugin` runs the one in `binDir` with /proc/sys read-only (in a mount
 * namespace of its own, so nothing else sees it): every sysctl write it makes fails.
 */
export function readOnlySysctls(name: string, plugin: string, binDir: string): string {
  const dir = join(scratchDir(), name);
  mkdirSync(dir, { recursive: true });
  const ro = "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys";
  writeFileSync(join(dir, plugin), `#!/bin/bash\nexec unshare -m bash -c '${ro} && exec -a ${plugin} ${join(binDir, plugin)}'\n`, { mode: 0o755 });
  return dir;
}

/** A PATH with iptables' nf_tables tools (or `instead` for some) and no `nft`: the firewall's iptables fallback. */
export function noNftPath(name: string, instead: Record<string, string> = {}): string {
  const tools = ["iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"];
  return pathWith(name, { ...Object.fromEntries(tools.map((t) => [t, `/usr/sbin/${t.replace("tables", "tables-nft")}`])), ...instead });
}

const IPTABLES = ["iptables", "ip6tables", "iptables-nft", "ip6tables-nft", "iptables-legacy", "ip6tables-legacy"];
const SPIED = ["nft", ...IPTABLES, ...IPTABLES.flatMap((t) => [`${t}-save`, `${t}-restore`])];

/**
 * A PATH whose nft and iptables tools are wrappers that log their command line and then run
 * the real tool: `spawned()` returns what ran since the last call (then forgets it).
 */
export function spyPath(name: string, o: { without?: string[] } = {}): { path: string; spawned(): string[] } {
  const dir = join(scratchDir(), name);
  const log = join(dir, "spawned.log");
  mkdirSync(dir, { recursive: true });
  writeFileSync(log, "");
  for (const tool of SPIED.filter((t) => !o.without?.includes(t))) {
    writeFileSync(join(dir, tool), `#!/bin/sh\necho "${tool} $*" >> '${log}'\nexec /usr/sbin/${tool} "$@"\n`, { mode: 0o755 });
  }
  return {
    path: dir,
    spawned: () => {
      const lines = readFileSync(log, "utf8").split("\n").filter(Boolean);
      writeFileSync(log, "");
      return lines;
    },
  };
}

/** A directory for the front of PATH whose `tools` (in /usr/sbin) each wait `seconds` first: to widen a race. */
export function slowPath(name: string, tools: string[], seconds: number): string {
  const dir = join(scratchDir(), name);
  mkdirSync(dir, { recursive: true });
  for (const tool of tools) writeFileSync(join(dir, tool), `#!/bin/sh\nsleep ${seconds}\nexec /usr/sbin/${tool} "$@"\n`, { mode: 0o755 });
  return dir;
}

/**
 * A PATH whose `tool` (in /usr/sbin) runs for its first `works` calls and then fails: for
 * a failure in the middle of a plugin's clean-up.
 */
export function failingAfter(name: string, tool: string, works: number): string {
  const dir = join(scratchDir(), name);
  const count = join(dir, "calls");
  mkdirSync(dir, { recursive: true });
  writeFileSync(count, "");
  // Each call takes its number under a lock, so calls running at once count right.
  writeFileSync(
    join(dir, tool),
    `#!/bin/sh
n=$(flock '${count}' sh -c 'echo >> "$1"; wc -l < "$1"' _ '${count}')
if [ "$n" -gt ${works} ]; then echo "${tool}: failing on purpose" >&2; exit 1; fi
exec /usr/sbin/${tool} "$@"
`,
    { mode: 0o755 },
  );
  return dir;
}

export function cleanupToolPaths(): void {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
  scratch = undefined;
}
