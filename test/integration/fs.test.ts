// File calls through the addon (shared/fs.ts): what the plugins' hot paths use instead of node:fs.
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { isErrno } from "../../shared/errno";
import {
  closeFile,
  dirName,
  isDirectory,
  isExecutable,
  joinPath,
  listDir,
  makeDirs,
  openFile,
  readText,
  realPath,
  removeFile,
  renameFile,
  writeText,
} from "../../shared/fs";

const dir = mkdtempSync(join(tmpdir(), "weft-fs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a throw");
}

describe("shared/fs", () => {
  it("writes, reads and replaces text with the given mode", () => {
    const f = join(dir, "a.txt");
    writeText(f, "héllo\r\nworld", "w", 0o600);
    expect(readFileSync(f, "utf8")).toBe("héllo\r\nworld");
    expect(statSync(f).mode & 0o777).toBe(0o600);
    writeText(f, "short");
    expect(readText(f)).toBe("short");
    // Text is written whole, NUL bytes included.
    writeText(f, "a\0b");
    expect(readFileSync(f, "utf8")).toBe("a\0b");
    // A path is a C string: one with a NUL inside is refused, not cut short to `dir`.
    expect(thrown(() => writeText(`${dir}\0/x.txt`, "y")).message).toContain("NUL");
  });

  it("wx refuses an existing file; errors carry the errno name and the path", () => {
    const f = join(dir, "b.txt");
    writeText(f, "first", "wx");
    const e = thrown(() => writeText(f, "second", "wx"));
    expect(isErrno(e, "EEXIST")).toBe(true);
    expect(e.message).toContain(f);
    expect(readText(f)).toBe("first");
    const missing = thrown(() => readText(join(dir, "nope")));
    expect(isErrno(missing, "ENOENT")).toBe(true);
    expect(missing.message).toContain(join(dir, "nope"));
  });

  it("makes nested directories, lists and removes", () => {
    const deep = join(dir, "x", "y", "z");
    makeDirs(deep);
    makeDirs(deep); // exists: fine
    expect(isDirectory(deep)).toBe(true);
    expect(isDirectory(join(dir, "b.txt"))).toBe(false);
    expect(isDirectory(join(dir, "missing"))).toBe(false);
    writeFileSync(join(deep, "f1"), "");
    writeFileSync(join(deep, "f2"), "");
    expect(listDir(deep).sort()).toEqual(["f1", "f2"]);
    removeFile(join(deep, "f1"));
    removeFile(join(deep, "f1"), { force: true });
    expect(isErrno(thrown(() => removeFile(join(deep, "f1"))), "ENOENT")).toBe(true);
    expect(isErrno(thrown(() => makeDirs(join(dir, "b.txt", "sub"))), "ENOTDIR")).toBe(true);
  });

  it("renames, resolves links and checks execute permission", () => {
    const from = join(dir, "r1");
    writeText(from, "moved");
    renameFile(from, join(dir, "r2"));
    expect(readText(join(dir, "r2"))).toBe("moved");
    symlinkSync(join(dir, "r2"), join(dir, "link"));
    expect(realPath(join(dir, "link"))).toBe(realPath(join(dir, "r2")));
    expect(isExecutable(join(dir, "r2"))).toBe(false);
    chmodSync(join(dir, "r2"), 0o755);
    expect(isExecutable(join(dir, "r2"))).toBe(true);
  });

  it("opens for locking, creating the file", () => {
    const lock = join(dir, "lock");
    const fd = openFile(lock, "c");
    expect(fd).toBeGreaterThan(2);
    closeFile(fd);
    expect(statSync(lock).isFile()).toBe(true);
  });

  it("joins and splits paths", () => {
    expect(joinPath("/var/lib/cni/", "net")).toBe("/var/lib/cni/net");
    expect(joinPath("/run/weft", "subnet.json")).toBe("/run/weft/subnet.json");
    expect(dirName("/etc/cni/net.d/10-weft.conflist")).toBe("/etc/cni/net.d");
    expect(dirName("/x")).toBe("/");
    expect(dirName("x")).toBe(".");
  });
});
