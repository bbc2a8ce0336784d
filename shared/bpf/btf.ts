// Finds kernel types by name in BTF (the kernel's own type information, as
// /sys/kernel/btf/vmlinux exposes it): a kfunc's type ID goes into the call instruction,
// and a struct's size tells which layout of it this kernel takes. The blob is ~5 MB
// (~100k types): it is read in chunks, the wanted names' offsets found in the string
// section first, then the type records matched on those offsets alone, so an agent that
// starts keeps no copy of it.
import { readSync } from "node:fs";
import { closeFile, openFile } from "../fs";

const MAGIC = 0xeb9f;
const HEADER = 24;
const CHUNK = 1 << 16;
export const KIND_STRUCT = 4;
export const KIND_FUNC = 12;

/** `length` bytes of the blob from `position` (fewer only at its end). */
export type ReadAt = (position: number, length: number) => Buffer;

/** Bytes that follow each kind's 12-byte common header, per member (vlen) or fixed. */
function trailing(kind: number, vlen: number): number {
  switch (kind) {
    case 1: // INT
    case 14: // VAR
    case 17: // DECL_TAG
      return 4;
    case 3: // ARRAY
      return 12;
    case 4: // STRUCT
    case 5: // UNION
    case 15: // DATASEC
    case 19: // ENUM64
      return vlen * 12;
    case 6: // ENUM
    case 13: // FUNC_PROTO
      return vlen * 8;
    default:
      return 0;
  }
}

export interface BtfType {
  id: number;
  /** a struct's size in bytes; a func's type (its prototype) */
  sizeOrType: number;
}

/** Where each name lies in the string section (its offset there), for those it holds. */
function stringOffsets(read: ReadAt, start: number, length: number, names: string[], size: number): Map<string, number> {
  const found = new Map<string, number>();
  // A name is found as "\0name\0"; chunks overlap by the longest of those, less one.
  const patterns = names.map((n) => ({ n, bytes: Buffer.from(`\0${n}\0`) }));
  const overlap = Math.max(...patterns.map((p) => p.bytes.length)) - 1;
  const span = Math.max(size, overlap + 1);
  for (let pos = start; pos < start + length && found.size < names.length; pos += span - overlap) {
    const chunk = read(pos, Math.min(span, start + length - pos));
    for (const p of patterns) {
      const at = chunk.indexOf(p.bytes);
      if (at >= 0 && !found.has(p.n)) found.set(p.n, pos - start + at + 1);
    }
    if (chunk.length < span) break;
  }
  return found;
}

/**
 * The types named in `wanted` ("kind:name", e.g. `${KIND_FUNC}:bpf_ct_release`) that the
 * blob has, reading `size` bytes at a time.
 */
export function findBtfTypes(read: ReadAt, wanted: string[], size = CHUNK): Map<string, BtfType> {
  const h = read(0, HEADER);
  if (h.length < HEADER || h.readUInt16LE(0) !== MAGIC) throw new Error("not BTF (bad magic)");
  const hdrLen = h.readUInt32LE(4);
  const typeStart = hdrLen + h.readUInt32LE(8);
  const typeEnd = typeStart + h.readUInt32LE(12);
  const targets = wanted.map((w) => ({ key: w, kind: Number(w.slice(0, w.indexOf(":"))), name: w.slice(w.indexOf(":") + 1) }));
  const offsets = stringOffsets(read, hdrLen + h.readUInt32LE(16), h.readUInt32LE(20), [...new Set(targets.map((t) => t.name))], size);
  const found = new Map<string, BtfType>();
  let chunk: Buffer = Buffer.alloc(0);
  let base = typeStart;
  for (let pos = typeStart, id = 1; pos < typeEnd && found.size < targets.length; id++) {
    // Only each record's 12-byte header is read; what trails it is stepped over.
    if (pos + 12 > base + chunk.length) {
      base = pos;
      chunk = read(pos, Math.min(Math.max(size, 12), typeEnd - pos));
      if (chunk.length < 12) throw new Error("BTF type section cut short");
    }
    const nameOff = chunk.readUInt32LE(pos - base);
    const info = chunk.readUInt32LE(pos - base + 4);
    const kind = (info >>> 24) & 0x1f;
    for (const t of targets) {
      if (t.kind === kind && nameOff !== 0 && offsets.get(t.name) === nameOff) found.set(t.key, { id, sizeOrType: chunk.readUInt32LE(pos - base + 8) });
    }
    pos += 12 + trailing(kind, info & 0xffff);
  }
  return found;
}

/** findBtfTypes on the BTF file at `path` (sysfs hands out a page per read: each read is looped). */
export function findBtfTypesIn(path: string, wanted: string[]): Map<string, BtfType> {
  const fd = openFile(path, "r");
  try {
    return findBtfTypes((position, length) => {
      const b = Buffer.alloc(length);
      let got = 0;
      for (let n = 1; got < length && n > 0; got += n) n = readSync(fd, b, got, length - got, position + got);
      return b.subarray(0, got);
    }, wanted);
  } finally {
    closeFile(fd);
  }
}
