// Typed face of the weft_native N-API addon (native/weft_native.c).
// The addon makes no libuv calls, so the same .node file loads in Node (tests) and
// embedded in the Bun-compiled executable.

export interface NativeAddon {
  /**
   * Opens a bound netlink socket of `protocol` (NETLINK_ROUTE 0, NETLINK_NETFILTER 12)
   * inside the netns at `netnsPath` (null: the caller's).
   */
  nlOpen(netnsPath: string | null, protocol: number): number;
  /** Sends one datagram to the kernel. */
  nlSend(fd: number, data: Uint8Array): void;
  /** Receives one datagram; null when nothing arrived within `timeoutMs`. */
  nlRecv(fd: number, timeoutMs: number): Buffer | null;
  /** Joins netlink multicast group `group` (RTNLGRP_*). */
  nlJoin(fd: number, group: number): void;
  close(fd: number): void;
  /** flock(2): `exclusive` picks LOCK_EX over LOCK_SH; blocks until granted. */
  flock(fd: number, exclusive: boolean): void;
  funlock(fd: number): void;
  /** Moves the calling thread into the netns at `path`; returns an fd for the old one. */
  nsEnter(path: string): number;
  /** Moves the calling thread back into the netns `savedFd` refers to, and closes it. */
  nsRestore(savedFd: number): void;
  /** "ENOENT" for 2: the errno's name, or "" when unknown. */
  errnoName(errno: number): string;
  /** Reads `fd` to EOF, as UTF-8 text; null when `fd` is 0 and stdin is a terminal. */
  readAll(fd: number): string | null;
  /** Writes all of `text` to `fd`. */
  writeAll(fd: number, text: string): void;
  /**
   * Starts `file` (searched on our PATH without a slash) with `args`, `input` written whole
   * to its stdin, and `env` ("K=V"). Returns [pid, stdoutFd, stderrFd] for reap().
   */
  spawn(file: string, args: string[], input: string, env: string[]): [pid: number, stdout: number, stderr: number];
  /** Reads the child's outputs to EOF and waits for it: [exit status, terminating signal, stdout, stderr]. */
  reap(pid: number, stdout: number, stderr: number): [status: number | null, signal: number | null, stdout: string, stderr: string];
  /** open(2) with O_CLOEXEC; `how` as in shared/fs.ts. */
  open(path: string, how: "r" | "w" | "wx" | "c" | "d", mode: number): number;
  mkdir(path: string, mode: number): void;
  unlink(path: string): void;
  /** Whether access(2) grants `mode` on `path`. */
  access(path: string, mode: number): boolean;
  rename(from: string, to: string): void;
  realpath(path: string): string;
  /** The names in a directory, without "." and "..". */
  readdir(path: string): string[];
  /** _exit(2): ends the process at once, without the runtime's teardown. */
  exitNow(code: number): never;
}

/** Errors thrown by the addon carry the errno name (`code`) and number (`errno`). */
export interface NativeError extends Error {
  code: string;
  errno: number;
}

declare const WEFT_NATIVE_PATH: string | undefined;

function load(): NativeAddon {
  // The bundles (CommonJS) define WEFT_NATIVE_PATH: where the executable embeds the addon
  // (an asset at /$bunfs/root, see build/build.mjs), or node-gyp's output for the test
  // helpers' bundles. process.dlopen rather than require(): Bun's CommonJS loader, cold in
  // every process, costs a plugin call ~0.5 ms more to reach the same dlopen. From the
  // sources (tests, ES modules) we load node-gyp's output.
  if (typeof WEFT_NATIVE_PATH === "string") {
    const addon = { exports: {} as NativeAddon };
    process.dlopen(addon, WEFT_NATIVE_PATH);
    return addon.exports;
  }
  // From the sources (ES modules) there is no `require`. node:module is fetched here, not
  // imported: a static import would make the bundle load it on every call (Bun: ~1 ms, 3 MB).
  const { createRequire } = (process as unknown as { getBuiltinModule(id: string): typeof import("node:module") }).getBuiltinModule("node:module");
  // "../native/…" rather than "./…": the same path then also holds from the lab's and the
  // bench's bundles in dist/, which use shared/ modules too.
  return createRequire(import.meta.url)("../native/build/Release/weft_native.node") as NativeAddon;
}

export const native: NativeAddon = load();
