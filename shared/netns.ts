// Running code inside another network namespace.
import { native } from "../native/index";
import { isErrno } from "./errno";

/**
 * Whether `e`, from opening the netns at a path, says the namespace is gone: its file was
 * removed (ENOENT), or the mount point no longer holds a namespace (EINVAL). The kernel
 * destroyed its interfaces with it.
 */
export function isNetnsGone(e: unknown): boolean {
  return isErrno(e, "ENOENT") || isErrno(e, "EINVAL");
}

/**
 * Runs `fn` with the calling thread switched into the netns at `path`, then switches
 * back. `fn` must be synchronous: a runtime thread started while we are switched (async
 * I/O, timers) would stay in the container's namespace forever.
 */
export function inNetns<T>(path: string, fn: () => T): T {
  const saved = native.nsEnter(path);
  try {
    const r = fn();
    if (r instanceof Promise) throw new Error("inNetns callback must be synchronous");
    return r;
  } finally {
    native.nsRestore(saved);
  }
}
