// Finding and running other programs: the tools (nft, iptables) and delegated plugins.
// Through the addon's posix_spawn rather than node:child_process, which in the compiled
// executable costs ~2.5 ms and ~4 MB to load; and a started program can run while the
// caller does other work (see start()).
import { native } from "../native/index";
import { isExecutable, joinPath } from "./fs";

/** The first executable `name` in `dirs`, or null. */
export function findExecutable(name: string, dirs: readonly string[]): string | null {
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = joinPath(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

const located = new Map<string, string | null>();

// Searched when PATH is unset or empty (a runtime that passes a bare environment), as
// execvp falls back to a default; nft and iptables live in /usr/sbin.
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Absolute path of `name` on PATH (or DEFAULT_PATH), or null; looked up once per process. */
export function which(name: string): string | null {
  let path = located.get(name);
  if (path === undefined) {
    path = findExecutable(name, (process.env["PATH"] || DEFAULT_PATH).split(":"));
    located.set(name, path);
  }
  return path;
}

export interface RunResult {
  ok: boolean;
  /** The exit status; null when the program could not be started or was killed. */
  status: number | null;
  stdout: string;
  /** Trimmed; says why when the program could not be started or was killed. */
  stderr: string;
}

/** A program started by start(): wait() collects it. */
export interface Running {
  wait(): RunResult;
}

/**
 * Starts `file args` with `input` on its stdin and `env` (default: ours) and returns at
 * once; the program runs while the caller goes on, until wait(). Never throws: a program
 * that cannot be started is a failed RunResult.
 */
export function start(file: string, args: string[], input = "", env: NodeJS.ProcessEnv = process.env): Running {
  // A loop, not entries().flatMap(): every nft run goes through here, and each first use
  // of a built-in costs a plugin call.
  const envList: string[] = [];
  for (const k in env) {
    const v = env[k];
    if (v !== undefined) envList.push(`${k}=${v}`);
  }
  let child: [number, number, number];
  try {
    child = native.spawn(file, args, input, envList);
  } catch (e) {
    const failed: RunResult = { ok: false, status: null, stdout: "", stderr: (e as Error).message };
    return { wait: () => failed };
  }
  let result: RunResult | undefined;
  return {
    wait() {
      if (!result) {
        const [status, signal, stdout, stderr] = native.reap(...child);
        const why = signal === null ? stderr.trim() : `${stderr.trim()}${stderr.trim() ? "; " : ""}killed by signal ${signal}`;
        result = { ok: status === 0, status, stdout, stderr: why };
      }
      return result;
    },
  };
}

/** Runs `file args` to completion, feeding `input` on stdin. Never throws for a non-zero exit. */
export function run(file: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): RunResult {
  return start(file, args, input, env).wait();
}

/** Like run(), but throws `what failed: <tool stderr>` on failure. */
export function mustRun(what: string, file: string, args: string[], input?: string): string {
  return okOrThrow(what, run(file, args, input));
}

/** The result's stdout, or throws `what: <tool stderr>` when it failed. */
export function okOrThrow(what: string, r: RunResult): string {
  if (!r.ok) throw new Error(`${what}: ${r.stderr || "exit status non-zero"}`);
  return r.stdout;
}
