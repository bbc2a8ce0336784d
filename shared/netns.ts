// Running code inside another network namespace.
import { native } from "../native/index";

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
