// What a unit under test threw, for asserting on the CNI error code and message.
import { CniError } from "../../shared/cni/errors";

/** The CniError `fn` throws; any other outcome fails the test. */
export function cniErrorOf(fn: () => unknown): CniError {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return e;
    throw e;
  }
  throw new Error("expected a CniError, but nothing was thrown");
}
