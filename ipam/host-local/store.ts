// The reservation store, byte-compatible with the reference's backend/disk so a node can
// switch between the Go host-local and ours without losing reservations:
//   <dataDir>/<network>/<ip>                  "<containerID>\r\n<ifname>", no trailing newline
//                                             (files from before 0.7 hold just "<containerID>")
//   <dataDir>/<network>/last_reserved_ip.<i>  the IP last handed out from range set i
//   <dataDir>/<network>/lock                  flock(LOCK_EX) held for a whole operation
import { native } from "../../native/index";
import { rollBack } from "../../shared/attempt";
import { CniError, ErrorCode } from "../../shared/cni/errors";
import { isErrno } from "../../shared/errno";
import { holdingLock, openLockFile } from "../../shared/file-lock";
import { closeFile, joinPath as join, listDir, openFile, readText, removeFile, writeText } from "../../shared/fs";
import { formatIP, parseIP, type IP } from "../../shared/ip";

const LINE_BREAK = "\r\n";
const LAST_RESERVED_PREFIX = "last_reserved_ip.";

/** One reservation file. `ifname` is null for the old one-line format. */
export interface Reservation {
  readonly ip: IP;
  readonly file: string;
  readonly containerId: string;
  readonly ifname: string | null;
}

function ioError(what: string, path: string, e: unknown): CniError {
  return new CniError(ErrorCode.IO, `host-local: cannot ${what} ${path}: ${(e as Error).message}`);
}

/** Whether a reservation belongs to the attachment; old one-line files match on the ID alone. */
export function ownedBy(r: Reservation, containerId: string, ifname: string): boolean {
  return r.containerId === containerId && (r.ifname === null || r.ifname === ifname);
}

export class Store {
  private constructor(private readonly dir: string) {}

  /** Runs `fn` with the network's directory locked, creating the directory if needed. */
  static withLock<T>(dataDir: string, network: string, fn: (s: Store) => T): T {
    return Store.locked(join(dataDir, network), true, fn)!;
  }

  /**
   * Like withLock, but undefined when the directory does not exist: then nothing was
   * ever reserved there, and DEL, CHECK and GC should not create it.
   */
  static withExistingLock<T>(dataDir: string, network: string, fn: (s: Store) => T): T | undefined {
    return Store.locked(join(dataDir, network), false, fn);
  }

  /** `fn` holding the directory's lock file (the directory made only when `create`); undefined without the directory. */
  private static locked<T>(dir: string, create: boolean, fn: (s: Store) => T): T | undefined {
    const lockPath = join(dir, "lock");
    let fd: number | undefined;
    try {
      fd = openLockFile(lockPath, create);
    } catch (e) {
      throw ioError("open", lockPath, e);
    }
    return fd === undefined ? undefined : holdingLock(lockPath, fd, () => fn(new Store(dir)));
  }

  /** Every file named by an IP address, with its owner. */
  reservations(): Reservation[] {
    const out: Reservation[] = [];
    for (const file of this.list()) {
      const ip = parseIP(file);
      if (ip === null) continue;
      let text: string;
      try {
        text = readText(join(this.dir, file)).trim();
      } catch (e) {
        // Gone since the listing, or a directory someone made: no reservation either way.
        if (isErrno(e, "ENOENT") || isErrno(e, "EISDIR")) continue;
        throw ioError("read", join(this.dir, file), e);
      }
      const brk = text.indexOf(LINE_BREAK);
      out.push(
        brk < 0
          ? { ip, file, containerId: text, ifname: null }
          : { ip, file, containerId: text.slice(0, brk), ifname: text.slice(brk + LINE_BREAK.length) },
      );
    }
    return out;
  }

  /**
   * Reserves `ip` for the attachment; false when someone holds it already. Created with
   * O_EXCL, as the reference does, rather than written to a temp file and renamed: the
   * flock already rules out races, and a crash between create and write leaves at worst an
   * empty file, which belongs to no attachment and so is reclaimed by gc(), whereas a
   * stray temp file would be one more thing the Go plugin's directory walk has to meet.
   */
  reserve(ip: IP, containerId: string, ifname: string, rangeSetIndex: number): boolean {
    const file = formatIP(ip);
    const path = join(this.dir, file);
    let fd: number;
    try {
      fd = openFile(path, "wx");
    } catch (e) {
      if (isErrno(e, "EEXIST")) return false;
      throw ioError("create", path, e);
    }
    try {
      try {
        native.writeAll(fd, containerId.trim() + LINE_BREAK + ifname);
      } catch (e) {
        throw ioError("write", path, e);
      } finally {
        closeFile(fd);
      }
      this.setLastReserved(ip, rangeSetIndex);
    } catch (e) {
      // Not reserved after all: the caller's rollback only knows addresses reserve() returned.
      rollBack(e, [() => this.remove(file)]);
    }
    return true;
  }

  /** The IP last handed out from range set `i`, or null if unknown or unreadable. */
  lastReserved(rangeSetIndex: number): IP | null {
    try {
      return parseIP(readText(join(this.dir, LAST_RESERVED_PREFIX + rangeSetIndex)).trim());
    } catch {
      // Only the round-robin position depends on it: a missing or torn file restarts it.
      return null;
    }
  }

  /** Deletes a reservation file; one already gone is no error. */
  remove(file: string): void {
    const path = join(this.dir, file);
    try {
      removeFile(path, { force: true });
    } catch (e) {
      throw ioError("remove", path, e);
    }
  }

  private setLastReserved(ip: IP, rangeSetIndex: number): void {
    const path = join(this.dir, LAST_RESERVED_PREFIX + rangeSetIndex);
    try {
      // A plain overwrite, as the reference does: see lastReserved() for why a torn one is harmless.
      writeText(path, formatIP(ip));
    } catch (e) {
      throw ioError("write", path, e);
    }
  }

  private list(): string[] {
    try {
      return listDir(this.dir);
    } catch (e) {
      throw ioError("list", this.dir, e);
    }
  }
}
