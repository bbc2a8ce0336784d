// Steps that must all be tried even when one before them failed (clean-up, reconciling):
// a failure is recorded instead of thrown, and the caller reports them together.

/** Runs `fn`; if it throws, records the error's message in `failures` (after `what: `, if given). */
export function attempt(failures: string[], fn: () => void, what?: string): void {
  try {
    fn();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    failures.push(what ? `${what}: ${message}` : message);
  }
}
