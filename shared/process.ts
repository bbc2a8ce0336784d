// Finding and running other programs: the tools (nft, iptables) and delegated plugins.
// node:child_process is fetched on first use, not imported: in the compiled executable
// loading it costs ~2 ms and several MB, and most plugin calls never spawn anything.
import { accessSync, constants } from "node:fs";

/** The first executable `name` in `dirs`, or null. */
export function findExecutable(name: string, dirs: readonly string[]): string | null {
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = dir.endsWith("/") ? dir + name : `${dir}/${name}`;
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
  /** The exit status; null when the program could not be started or was killed. */
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `file args` synchronously, feeding `input` on stdin. Never throws for a non-zero exit. */
export function run(file: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): RunResult {
  const { spawnSync } = process.getBuiltinModule("node:child_process");
  const r = spawnSync(file, args, { input, encoding: "utf8", maxBuffer: 64 << 20, ...(env ? { env } : {}) });
  const stderr = r.error ? r.error.message : (r.stderr ?? "").trim();
  return { ok: !r.error && r.status === 0, status: r.error ? null : r.status, stdout: r.stdout ?? "", stderr };
}

/** Like run(), but throws `what failed: <tool stderr>` on failure. */
export function mustRun(what: string, file: string, args: string[], input?: string): string {
  const r = run(file, args, input);
  if (!r.ok) throw new Error(`${what}: ${r.stderr || "exit status non-zero"}`);
  return r.stdout;
}
