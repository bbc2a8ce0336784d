// Steps that must all be tried even when one before them failed (clean-up, reconciling):
// their failures are reported together once all have run.
import { CniError, IncompleteRollback, messageOf } from "./cni/errors";

/** Runs `fn`; if it throws, records the error's message in `failures` (after `what: `, if given). Whether it ran through. */
export function attempt(failures: string[], fn: () => void, what?: string): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    failures.push(what ? `${what}: ${messageOf(e)}` : messageOf(e));
    return false;
  }
}

/**
 * After `cause` failed a change half-way: runs every undo, even when one fails, then throws
 * `cause`, as an IncompleteRollback naming what could not be undone if anything.
 */
export function rollBack(cause: unknown, undos: Iterable<() => void>): never {
  const failed: string[] = [];
  for (const u of undos) attempt(failed, u);
  throw failed.length ? new IncompleteRollback(cause, failed) : cause;
}

/** `e` with another message, keeping its CNI code and details where it has them. */
function withMessage(e: unknown, message: string): Error {
  return e instanceof CniError ? new CniError(e.code, message, e.details) : new Error(message);
}

/** Runs `fn`; an error it throws gets `what: ` before its message and keeps its CNI code. */
export function labelled(what: string, fn: () => void): void {
  try {
    fn();
  } catch (e) {
    throw withMessage(e, `${what}: ${messageOf(e)}`);
  }
}

/**
 * Runs every step, each even when one before it failed, then throws what failed: a lone
 * error as it was, several as one error naming them all, with the CNI code of the first
 * that has one (a delegated plugin's "try again later" must reach the runtime).
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
  if (errors.length > 1) {
    throw withMessage(errors.find((e) => e instanceof CniError), errors.map(messageOf).join("; "));
  }
}
