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
  /**
   * Sends one datagram from a child process and returns at once: the child waits in the
   * kernel while it runs the request, and exits. Replies and notifications arrive on `fd`;
   * the returned status fd (-1 if the caller had to send it itself) goes to nlRecv, and
   * is the caller's to close.
   */
  nlSendDetached(fd: number, data: Uint8Array): number;
  /** Receives one datagram; null when nothing arrived within `timeoutMs`. */
  nlRecv(fd: number, timeoutMs: number): Buffer | null;
  /** The same, or the errno of a send nlSendDetached's child could not make (`sendStatus`). */
  nlRecv(fd: number, timeoutMs: number, sendStatus: number): Buffer | null | number;
  /** Joins netlink multicast group `group` (RTNLGRP_*). */
  nlJoin(fd: number, group: number): void;
  close(fd: number): void;
  /** flock(2) LOCK_EX; blocks until granted. */
  flock(fd: number): void;
  funlock(fd: number): void;
  /** flock(2) LOCK_EX without waiting: false when another descriptor holds it. */
  tryFlock(fd: number): boolean;
  /** Whether the file open on `fd` still has a name (fstat's link count). */
  linked(fd: number): boolean;
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
  /** Whether two paths name one file (device and inode, links followed); false if either is missing. */
  sameFile(a: string, b: string): boolean;
  /**
   * iptables-legacy's filter FORWARD chain in our netns: whether its policy drops, and how
   * many of its rules carry `comment`; null without a FORWARD chain. Reading creates the
   * table where the kernel has none yet: look for it first.
   */
  legacyForward(family: 4 | 6, comment: string): [drops: boolean, matching: number] | null;
  /**
   * bpf(2) with `attr` as the union bpf_attr, after writing the address of each array in
   * `pointers` at its offset in `attr`; the syscall's result (an fd, or 0).
   */
  bpf(cmd: number, attr: Uint8Array, pointers: [offset: number, data: Uint8Array][]): number;
  /** _exit(2): ends the process at once, without the runtime's teardown. */
  exitNow(code: number): never;
}

/** Errors thrown by the addon carry the errno name (`code`) and number (`errno`). */
export interface NativeError extends Error {
  code: string;
  errno: number;
}

declare const WEFT_NATIVE_PATH: string | undefined;

/** The part of bun:ffi used here (the executable is Bun; the tests' Node never gets here). */
interface BunFfi {
  dlopen(
    lib: string,
    symbols: { memfd_create: { args: ["buffer", "u32"]; returns: "i32" }; __errno_location: { args: []; returns: "ptr" } },
  ): {
    symbols: { memfd_create(name: Uint8Array, flags: number): number; __errno_location(): number };
    close(): void;
  };
  read: { i32(ptr: number): number };
}

const MFD_CLOEXEC = 1;
// Where vm.memfd_noexec forbids executable memfds (kernels 6.3-6.6 refuse the plain call
// with EACCES), one sealed against exec(2): mmap for dlopen is still allowed.
const MFD_NOEXEC_SEAL = 8;
const EACCES = 13;

/** A built-in module fetched when this runs: an import would make every bundle load it. */
function builtin<T>(id: string): T {
  return (process as unknown as { getBuiltinModule(id: string): T }).getBuiltinModule(id);
}

function dlopenAt(path: string): NativeAddon {
  const addon = { exports: {} as NativeAddon };
  process.dlopen(addon, path);
  return addon.exports;
}

/**
 * Bun unpacks an embedded addon into $TMPDIR and dlopens it there, which fails when TMPDIR
 * is missing or unwritable, or mounted noexec as hardened nodes mount /tmp. Then the
 * addon's bytes go into a memory file (memfd), which no mount option governs, and load
 * from it. memfd_create is reached through bun:ffi, the one way to a syscall before the
 * addon is loaded; it compiles a stub (~2 ms), so it is only the fallback.
 */
function dlopenFromMemory(embedded: string): NativeAddon {
  const { dlopen, read } = builtin<BunFfi>("bun:ffi");
  const { closeSync, readFileSync, writeFileSync } = builtin<typeof import("node:fs")>("node:fs");
  const libc = dlopen("libc.so.6", {
    memfd_create: { args: ["buffer", "u32"], returns: "i32" },
    __errno_location: { args: [], returns: "ptr" },
  });
  // The fd, or -errno as the kernel reports it.
  const name = Buffer.from("weft_native\0");
  const create = (flags: number): number => {
    const fd = libc.symbols.memfd_create(name, flags);
    return fd < 0 ? -read.i32(libc.symbols.__errno_location()) : fd;
  };
  let fd: number;
  try {
    fd = create(MFD_CLOEXEC);
    if (fd === -EACCES) fd = create(MFD_CLOEXEC | MFD_NOEXEC_SEAL);
  } finally {
    libc.close();
  }
  if (fd < 0) throw new Error(`memfd_create failed (errno ${-fd})`);
  try {
    writeFileSync(fd, readFileSync(embedded));
    return dlopenAt(`/proc/self/fd/${fd}`);
  } finally {
    closeSync(fd);
  }
}

function load(): NativeAddon {
  // The bundles define WEFT_NATIVE_PATH: where the executable embeds the addon
  // (an asset at /$bunfs/root, see build/build.mjs), or node-gyp's output for the test
  // helpers' bundles. process.dlopen rather than require(): Bun's CommonJS loader, cold in
  // every process, costs a plugin call ~0.5 ms more to reach the same dlopen. From the
  // sources (tests, ES modules) we load node-gyp's output.
  if (typeof WEFT_NATIVE_PATH === "string") {
    try {
      return dlopenAt(WEFT_NATIVE_PATH);
    } catch (e) {
      if (!WEFT_NATIVE_PATH.startsWith("/$bunfs/")) throw e;
      try {
        return dlopenFromMemory(WEFT_NATIVE_PATH);
      } catch (e2) {
        throw new Error(`cannot load weft's native addon: ${(e as Error).message}; from memory: ${(e2 as Error).message}`);
      }
    }
  }
  // From the sources (ES modules) there is no `require`; node:module costs Bun ~1 ms and
  // 3 MB, so no bundle may import it.
  const { createRequire } = builtin<typeof import("node:module")>("node:module");
  // "../native/…" rather than "./…": the same path then also holds from the lab's and the
  // bench's bundles in dist/, which use shared/ modules too.
  return createRequire(import.meta.url)("../native/build/Release/weft_native.node") as NativeAddon;
}

export const native: NativeAddon = load();
