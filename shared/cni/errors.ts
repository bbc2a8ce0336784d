// CNI error codes and the error type every plugin throws. The runtime reads errors as
// JSON on stdout, so the shape here is protocol, not presentation.

export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnv: 4,
  IO: 5,
  Decode: 6,
  InvalidConfig: 7,
  InvalidNetNS: 8,
  TryAgainLater: 11,
  NotReady: 50,
  NotReadyLimited: 51,
  // First plugin-specific code; used for failures that carry no code of their own.
  Internal: 100,
} as const;

export interface ErrorResponse {
  cniVersion: string;
  code: number;
  msg: string;
  details?: string;
}

export class CniError extends Error {
  readonly code: number;
  readonly details: string;

  constructor(code: number, msg: string, details = "") {
    super(msg);
    this.name = "CniError";
    this.code = code;
    this.details = details;
  }

  // cniVersion is the caller's to supply: the error itself may predate knowing it.
  toResponse(cniVersion: string): ErrorResponse {
    const r: ErrorResponse = { cniVersion, code: this.code, msg: this.message };
    if (this.details !== "") r.details = this.details;
    return r;
  }
}

/** What a thrown value says: an Error's message, anything else as text. */
export const messageOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Any error as a CniError: one without a code of its own gets Internal. */
export function toCniError(e: unknown): CniError {
  if (e instanceof CniError) return e;
  return new CniError(ErrorCode.Internal, messageOf(e));
}

/**
 * A failure whose rollback failed too: something of the call may be left, for the runtime's
 * DEL (which follows a failed ADD) to remove. Says so, with the first failure's code.
 */
export class IncompleteRollback extends CniError {
  constructor(cause: unknown, undoFailures: string[]) {
    const c = toCniError(cause);
    super(c.code, `${c.message} (and rolling back failed: ${undoFailures.join("; ")})`, c.details);
  }
}

export function cniErrorJson(e: CniError, version: string): string {
  return JSON.stringify(e.toResponse(version), null, 4);
}
