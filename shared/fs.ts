// File I/O for plugin calls, through the addon rather than node:fs: in the compiled
// executable node:fs costs every call ~1.3 ms and ~3 MB to load (native/weft_native.c).
// Errors carry `code` (the errno name) and the path, like node:fs's.
import { native, type NativeError } from "../native/index";
import { isErrno } from "./errno";

/** How a file is opened: read, write (create/truncate), write a new file, read creating it, a directory. */
export type OpenHow = "r" | "w" | "wx" | "c" | "d";

const F_OK = 0;
const X_OK = 1;

/** A native call's error, naming the path it was about. */
export function naming(e: unknown, path: string): NativeError {
  const err = e as NativeError;
  err.message = `${err.message}, '${path}'`;
  return err;
}

/** Runs a native call on `path`, naming the path in its error. */
function onPath<T>(path: string, call: () => T): T {
  try {
    return call();
  } catch (e) {
    throw naming(e, path);
  }
}

/** `dir/name`, for a `dir` with or without a trailing slash (as configured). */
export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/** The directory part of `path` ("." for a bare name). */
export function dirName(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : i === 0 ? "/" : path.slice(0, i);
}

export function openFile(path: string, how: OpenHow, mode = 0o644): number {
  return onPath(path, () => native.open(path, how, mode));
}

export function closeFile(fd: number): void {
  native.close(fd);
}

export function readText(path: string): string {
  const fd = openFile(path, "r");
  try {
    return onPath(path, () => native.readAll(fd) ?? "");
  } finally {
    closeFile(fd);
  }
}

/** Writes `text` to `path`: "w" replaces it, "wx" fails with EEXIST if it exists. */
export function writeText(path: string, text: string, how: "w" | "wx" = "w", mode = 0o644): void {
  const fd = openFile(path, how, mode);
  try {
    onPath(path, () => native.writeAll(fd, text));
  } finally {
    closeFile(fd);
  }
}

/** mkdir -p. */
export function makeDirs(path: string, mode = 0o755): void {
  try {
    onPath(path, () => native.mkdir(path, mode));
  } catch (e) {
    if (isErrno(e, "EEXIST") && isDirectory(path)) return;
    const parent = dirName(path.replace(/\/+$/, ""));
    if (!isErrno(e, "ENOENT") || parent === "." || parent === "/") throw e;
    makeDirs(parent, mode);
    makeDirs(path, mode);
  }
}

/** False when `path` is missing or not a directory. */
export function isDirectory(path: string): boolean {
  try {
    closeFile(openFile(path, "d", 0));
    return true;
  } catch (e) {
    if (isErrno(e, "ENOENT") || isErrno(e, "ENOTDIR")) return false;
    throw e;
  }
}

export function listDir(path: string): string[] {
  return onPath(path, () => native.readdir(path));
}

/** Deletes a file; with `force`, one already gone is no error. */
export function removeFile(path: string, o: { force?: boolean } = {}): void {
  try {
    onPath(path, () => native.unlink(path));
  } catch (e) {
    if (!o.force || !isErrno(e, "ENOENT")) throw e;
  }
}

export function renameFile(from: string, to: string): void {
  onPath(`${from}' -> '${to}`, () => native.rename(from, to));
}

/** Whether `path` names anything (links followed). */
export function exists(path: string): boolean {
  return native.access(path, F_OK);
}

export function isExecutable(path: string): boolean {
  return native.access(path, X_OK);
}

export function realPath(path: string): string {
  return onPath(path, () => native.realpath(path));
}
