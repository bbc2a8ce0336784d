// flock(2) on a lock file: the one way weft's processes (plugins, agent) exclude each other
// from a directory's state. The lock file is never removed, so every process locks the same
// inode.
import { native } from "../native/index";
import { isErrno } from "./errno";
import { closeFile, dirName, makeDirs, openFile } from "./fs";

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

/** Runs `fn` holding flock(LOCK_EX) on `fd` (waiting for it), then closes `fd`. */
export function holdingLock<T>(fd: number, fn: () => T): T {
  return thenUnlock(fd, () => {
    native.flock(fd, true);
    return fn();
  });
}

/** Runs `fn`, then unlocks and closes `fd` (unlocking a lock not taken does nothing). */
function thenUnlock<T>(fd: number, fn: () => T): T {
  try {
    return fn();
  } finally {
    // Closing our only descriptor would drop the lock anyway; unlocking first says so.
    try {
      native.funlock(fd);
    } finally {
      closeFile(fd);
    }
  }
}

/** Runs `fn` holding the lock file at `path`, creating it (and its directory) if needed. */
export function withFileLock<T>(path: string, fn: () => T): T {
  return holdingLock(openLockFile(path, true)!, fn);
}

/** Like withFileLock, but without waiting: "busy", and `fn` not run, while another holds it. */
export function tryFileLock<T>(path: string, fn: () => T): T | "busy" {
  const fd = openLockFile(path, true)!;
  return thenUnlock(fd, () => (native.tryFlock(fd) ? fn() : "busy"));
}
