// Steps that must all be tried even when one before them failed (clean-up, reconciling):
// a failure is recorded instead of thrown, and the caller reports them together.

const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Runs `fn`; if it throws, records the error's message in `failures` (after `what: `, if given). */
export function attempt(failures: string[], fn: () => void, what?: string): void {
  try {
    fn();
  } catch (e) {
    failures.push(what ? `${what}: ${messageOf(e)}` : messageOf(e));
  }
}

/**
 * Runs every step, each even when one before it failed, then throws what failed: a lone
 * error as it was (a CNI error keeps its code), several as one error naming them all.
 */
export function allSteps(...steps: Array<() => void>): void {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      step();
    } catch (e) {
      errors.push(e);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new Error(errors.map(messageOf).join("; "));
}
