// sysctl reads and writes through /proc/sys. Keys are slash-separated
// ("net/ipv4/conf/weft.1/forwarding") because interface names may contain dots.
// net.* keys act on the netns of the thread that opens the file.
import { readFileSync, writeFileSync } from "node:fs";

export function readSysctl(key: string): string | null {
  try {
    return readFileSync(`/proc/sys/${key}`, "utf8").trim();
  } catch {
    return null;
  }
}

/** Writes `value` unless it is already set; returns false when the key does not exist. */
export function writeSysctl(key: string, value: string): boolean {
  const current = readSysctl(key);
  if (current === null) return false;
  if (current !== value) writeFileSync(`/proc/sys/${key}`, value);
  return true;
}
