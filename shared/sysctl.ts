// sysctl reads and writes through /proc/sys. Keys are slash-separated
// ("net/ipv4/conf/weft.1/forwarding") because interface names may contain dots.
// net.* keys act on the netns of the thread that opens the file.
import { isErrno } from "./errno";
import { readText, writeText } from "./fs";

export function readSysctl(key: string): string | null {
  try {
    return readText(`/proc/sys/${key}`).trim();
  } catch {
    return null;
  }
}

/** Writes `value` unless it is already set or the key does not exist; returns whether it wrote. */
export function writeSysctl(key: string, value: string): boolean {
  const current = readSysctl(key);
  if (current === null || current === value) return false;
  writeText(`/proc/sys/${key}`, value);
  return true;
}

/**
 * Writes `value` without reading the key first (for an interface just made, whose values
 * are the kernel's defaults); returns false when the key does not exist (IPv6 off).
 */
export function setSysctl(key: string, value: string): boolean {
  try {
    writeText(`/proc/sys/${key}`, value);
    return true;
  } catch (e) {
    if (isErrno(e, "ENOENT")) return false;
    throw e;
  }
}
