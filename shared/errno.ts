// One test for "which system error is this", whatever raised it.

/** Whether `e` is a system error named `code` ("ENOENT"): the addon's, a netlink refusal, or node:fs's. */
export function isErrno(e: unknown, code: string): boolean {
  return (e as { code?: unknown } | null)?.code === code;
}
