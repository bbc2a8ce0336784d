// Which CNI spec versions weft speaks, and the checks that gate each verb on them.
import { CniError, ErrorCode } from "./errors";

export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;
export const LATEST_VERSION = "1.1.0";

const SUPPORTED_LIST = SUPPORTED_VERSIONS.join(", ");

export function isSupported(v: unknown): v is string {
  return typeof v === "string" && (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

function parseVersion(v: string): [number, number, number] {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(v);
  if (!m) throw new CniError(ErrorCode.IncompatibleVersion, `invalid CNI version "${v}"`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

// Numeric, not lexical: "0.10.0" > "0.4.0". Throws code 1 on anything not x.y.z.
export function compareVersions(a: string, b: string): -1 | 0 | 1 {
  const pa = parseVersion(a);
  const pb = parseVersion(b);
  for (let i = 0; i < 3; i++) {
    const d = pa[i]! - pb[i]!;
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

// The config's cniVersion, checked. A missing cniVersion means 0.1.0 to the reference
// library, a version weft does not implement, so it is refused rather than guessed.
export function configVersion(raw: Record<string, unknown>): string {
  const v = raw["cniVersion"];
  if (v === undefined || v === "") {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `incompatible CNI versions: config has no cniVersion (read as 0.1.0); supported: ${SUPPORTED_LIST}`,
    );
  }
  if (typeof v !== "string") {
    throw new CniError(ErrorCode.Decode, `cniVersion must be a string, got ${JSON.stringify(v)}`);
  }
  if (!isSupported(v)) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `incompatible CNI versions: config is "${v}"; supported: ${SUPPORTED_LIST}`,
    );
  }
  return v;
}

// Verbs newer than the config's version must be refused, as the reference skeleton does.
export function requireVersionFor(verb: string, confVersion: string, minimum: string): void {
  if (compareVersions(confVersion, minimum) < 0) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `config version does not allow ${verb}`,
      `cniVersion "${confVersion}" < "${minimum}"`,
    );
  }
}

/**
 * The supported cniVersion stdin asks for, leniently: anything unusable (nothing, garbage,
 * an unknown version) gives the latest, because runtimes probe VERSION with such input.
 */
export function requestedVersion(stdin: string): string {
  let v: unknown;
  try {
    const parsed: unknown = stdin.trim() === "" ? undefined : JSON.parse(stdin);
    if (typeof parsed === "object" && parsed !== null) v = (parsed as Record<string, unknown>)["cniVersion"];
  } catch {
    // Garbage on stdin is the runtime's problem.
  }
  return isSupported(v) ? v : LATEST_VERSION;
}

// VERSION reply. libcni sends {"cniVersion": "x"} (or nothing).
export function versionReply(stdin: string): string {
  return JSON.stringify({ cniVersion: requestedVersion(stdin), supportedVersions: SUPPORTED_VERSIONS });
}
