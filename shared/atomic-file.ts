// Files other programs read while we write them (conf files, subnet.json, executables):
// made under a temp name in the same directory, then renamed over the target, so a reader
// sees the old file or the new one, never a partial one.
import { isErrno } from "./errno";
import { dirName, makeDirs, readText, removeFile, renameFile, writeText } from "./fs";

/** Removes a temp file if it is there; a failure to is not the caller's problem. */
function discard(tmp: string): void {
  try {
    removeFile(tmp, { force: true });
  } catch {
    // nothing more to do
  }
}

/**
 * Lets `make` create the new file at a temp path, then renames it over `target`. The
 * common case costs nothing extra: the directory is made only when missing (ENOENT), and
 * a temp file left by a crashed run only gets in the way of a `make` that refuses to
 * overwrite (EEXIST); each is mended once and `make` tried again.
 */
export function replaceFile(target: string, make: (tmp: string) => void): void {
  const slash = target.lastIndexOf("/");
  const tmp = `${target.slice(0, slash + 1)}.${target.slice(slash + 1)}.tmp-${process.pid}`;
  const attempt = (): void => {
    make(tmp);
    renameFile(tmp, target);
  };
  try {
    attempt();
    return;
  } catch (e) {
    discard(tmp);
    if (isErrno(e, "ENOENT")) makeDirs(dirName(target));
    else if (!isErrno(e, "EEXIST")) throw e;
  }
  try {
    attempt();
  } catch (e) {
    discard(tmp);
    throw e;
  }
}

/**
 * Writes `content` to `path` (creating its directory) unless it already holds exactly that;
 * returns whether it wrote. `written` runs on the temp file before the rename.
 */
export function writeFileAtomic(path: string, content: string, written?: (tmp: string) => void): boolean {
  try {
    if (readText(path) === content) return false;
  } catch {
    // missing or unreadable: write it
  }
  replaceFile(path, (tmp) => {
    writeText(tmp, content);
    written?.(tmp);
  });
  return true;
}
