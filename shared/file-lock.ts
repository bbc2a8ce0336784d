// flock(2) on lock files: how weft's processes (plugins, agent) exclude each other from a
// piece of state. A lock file may be removed, but only by a process holding it; so whoever
// takes one checks afterwards that the file it locked is still the one at the path (a
// holder may have removed it while we waited), and tries again if not.
import { native } from "../native/index";
import { isErrno } from "./errno";
import { closeFile, dirName, makeDirs, naming, openFile } from "./fs";

/**
 * Opens (creating) the lock file at `path`, with O_CLOEXEC so commands we spawn never
 * inherit the lock. Its directory is looked at only when that fails: it exists on every
 * call but the first. Undefined when the directory is missing and `createDir` is false.
 */
export function openLockFile(path: string, createDir: boolean): number | undefined {
  try {
    return openFile(path, "c");
  } catch (e) {
    if (!isErrno(e, "ENOENT") && !isErrno(e, "ENOTDIR")) throw e;
    if (!createDir) return undefined;
  }
  makeDirs(dirName(path));
  return openFile(path, "c");
}

/** Runs `fn` holding flock(LOCK_EX) on `fd`, the lock file at `path` (waiting for it), then closes `fd`. */
export function holdingLock<T>(path: string, fd: number, fn: () => T): T {
  try {
    try {
      native.flock(fd);
    } catch (e) {
      throw naming(e, path);
    }
    return fn();
  } finally {
    release(fd);
  }
}

function release(fd: number): void {
  // Unlocked before the close: a child still holding a copy of the descriptor (the DEL's
  // detached netlink send, until it closes what it inherited) must not keep the lock.
  try {
    native.funlock(fd);
  } finally {
    closeFile(fd);
  }
}

export interface LockOptions {
  /** make the lock file's directory when missing (else run `fn` unlocked: nothing there to guard) */
  createDir: boolean;
  /** runs last while the lock is still held (to remove the lock file, say), however `fn` ended */
  beforeRelease?: () => void;
}

/** An fd holding the lock of the file now at `path`; undefined without its directory. */
function acquire(path: string, createDir: boolean, wait: boolean): number | "busy" | undefined {
  for (;;) {
    const fd = openLockFile(path, createDir);
    if (fd === undefined) return undefined;
    let linked: boolean;
    try {
      if (wait) native.flock(fd);
      else if (!native.tryFlock(fd)) {
        closeFile(fd);
        return "busy";
      }
      // Lock files are only ever removed, never renamed over: one still linked is the one at the path.
      linked = native.linked(fd);
    } catch (e) {
      release(fd);
      throw naming(e, path);
    }
    if (linked) return fd;
    release(fd); // a holder removed it while we waited: lock the one there now
  }
}

function locked<T>(path: string, o: LockOptions, wait: boolean, fn: () => T): T | "busy" {
  const fd = acquire(path, o.createDir, wait);
  if (fd === "busy") return fd;
  try {
    const r = fn();
    // The lock goes when fn returns: a promise's work would run unlocked.
    if (r instanceof Promise) throw new Error("a file lock's callback must be synchronous");
    return r;
  } finally {
    if (fd !== undefined) {
      try {
        o.beforeRelease?.();
      } finally {
        release(fd);
      }
    }
  }
}

/** Runs `fn` holding the lock file at `path` (creating it), waiting for it. */
export function withFileLock<T>(path: string, o: LockOptions, fn: () => T): T {
  return locked(path, o, true, fn) as T;
}

/** Like withFileLock, but without waiting: "busy", and `fn` not run, while another holds it. */
export function tryFileLock<T>(path: string, o: LockOptions, fn: () => T): T | "busy" {
  return locked(path, o, false, fn);
}
