// Files other programs read while we write them (conf files, subnet.json, executables):
// made under a temp name in the same directory, then renamed over the target, so a reader
// sees the old file or the new one, never a partial one.
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** Lets `make` create the new file at a temp path, then renames it over `target`. */
export function replaceFile(target: string, make: (tmp: string) => void): void {
  const tmp = join(dirname(target), `.${basename(target)}.tmp-${process.pid}`);
  rmSync(tmp, { force: true });
  try {
    make(tmp);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** Writes `content` to `path` (creating its directory) unless it already holds exactly that; returns whether it wrote. */
export function writeFileAtomic(path: string, content: string): boolean {
  try {
    if (readFileSync(path, "utf8") === content) return false;
  } catch {
    // missing or unreadable: write it
  }
  mkdirSync(dirname(path), { recursive: true });
  replaceFile(path, (tmp) => writeFileSync(tmp, content, { mode: 0o644 }));
  return true;
}
