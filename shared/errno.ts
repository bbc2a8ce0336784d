// One test for "which system error is this", whatever raised it.

/** Whether `e` is a system error named `code` ("ENOENT"): the addon's, a netlink refusal, or node:fs's. */
export function isErrno(e: unknown, code: string): boolean {
  return (e as { code?: unknown } | null)?.code === code;
}

/**
 * Runs a delete: true, or false when it fails with one of `absent` (the kernel's word for
 * "there was none", which differs by object), so a teardown can be run twice.
 */
export function deleted(absent: readonly string[], run: () => unknown): boolean {
  try {
    run();
    return true;
  } catch (e) {
    for (const code of absent) if (isErrno(e, code)) return false;
    throw e;
  }
}
