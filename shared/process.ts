// Finding and running other programs: the tools (nft, iptables) and delegated plugins.
import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { join } from "node:path";

/** The first executable `name` in `dirs`, or null. */
export function findExecutable(name: string, dirs: readonly string[]): string | null {
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return null;
}

const located = new Map<string, string | null>();

/** Absolute path of `name` on PATH, or null; looked up once per process. */
export function which(name: string): string | null {
  let path = located.get(name);
  if (path === undefined) {
    path = findExecutable(name, (process.env["PATH"] ?? "").split(":"));
    located.set(name, path);
  }
  return path;
}

export interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** Runs `file args` synchronously, feeding `input` on stdin. Never throws for a non-zero exit. */
export function run(file: string, args: string[], input?: string): RunResult {
  const r = spawnSync(file, args, { input, encoding: "utf8", maxBuffer: 64 << 20 });
  const stderr = r.error ? r.error.message : (r.stderr ?? "").trim();
  return { ok: !r.error && r.status === 0, stdout: r.stdout ?? "", stderr };
}

/** Like run(), but throws `what failed: <tool stderr>` on failure. */
export function mustRun(what: string, file: string, args: string[], input?: string): string {
  const r = run(file, args, input);
  if (!r.ok) throw new Error(`${what}: ${r.stderr || "exit status non-zero"}`);
  return r.stdout;
}
