// Running code inside another network namespace.
import { native } from "../native/index";
import { CniError, ErrorCode } from "./cni/errors";
import { isErrno } from "./errno";

/** Whether CNI_NETNS names the calling thread's own netns. */
export function isOwnNetns(netns: string): boolean {
  return netns !== "" && native.sameFile(netns, "/proc/thread-self/ns/net");
}

/**
 * Refuses (code 8) a CNI_NETNS that is the plugin's own netns, before anything is touched:
 * a runtime passing it would have an interface plugin configure, or delete, the host's own
 * interfaces (the reference's skeleton reports it only after the verb ran, the host's
 * interface of that name deleted).
 */
export function refuseOwnNetns(netns: string): void {
  if (isOwnNetns(netns)) throw new CniError(ErrorCode.InvalidNetNS, "plugin's netns and netns from CNI_NETNS should not be the same");
}

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
