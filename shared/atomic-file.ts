// Files other programs read while we write them (conf files, subnet.json, executables):
// made under a temp name in the same directory, then renamed over the target, so a reader
// sees the old file or the new one, never a partial one.
import { dirName, makeDirs, readText, removeFile, renameFile, writeText } from "./fs";

/** Lets `make` create the new file at a temp path, then renames it over `target`. */
export function replaceFile(target: string, make: (tmp: string) => void): void {
  const slash = target.lastIndexOf("/");
  const tmp = `${target.slice(0, slash + 1)}.${target.slice(slash + 1)}.tmp-${process.pid}`;
  removeFile(tmp, { force: true });
  try {
    make(tmp);
    renameFile(tmp, target);
  } catch (e) {
    removeFile(tmp, { force: true });
    throw e;
  }
}

/** Writes `content` to `path` (creating its directory) unless it already holds exactly that; returns whether it wrote. */
export function writeFileAtomic(path: string, content: string): boolean {
  try {
    if (readText(path) === content) return false;
  } catch {
    // missing or unreadable: write it
  }
  makeDirs(dirName(path));
  replaceFile(path, (tmp) => writeText(tmp, content));
  return true;
}
