// Finds kernel types by name in BTF (the kernel's own type information, as
// /sys/kernel/btf/vmlinux exposes it): a kfunc's type ID goes into the call instruction,
// and a struct's size tells which layout of it this kernel takes. One pass over the type
// section, comparing bytes: the blob holds ~100k types, and decoding every name would
// cost each agent that starts tens of milliseconds and megabytes.
const MAGIC = 0xeb9f;
export const KIND_STRUCT = 4;
export const KIND_FUNC = 12;

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

/** The types named in `wanted` ("kind:name", e.g. `${KIND_FUNC}:bpf_ct_release`) that `blob` has. */
export function findBtfTypes(blob: Uint8Array, wanted: string[]): Map<string, BtfType> {
  const v = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  if (blob.length < 24 || v.getUint16(0, true) !== MAGIC) throw new Error("not BTF (bad magic)");
  const hdrLen = v.getUint32(4, true);
  const typeOff = hdrLen + v.getUint32(8, true);
  const typeEnd = typeOff + v.getUint32(12, true);
  const strOff = hdrLen + v.getUint32(16, true);
  const targets = wanted.map((w) => {
    const colon = w.indexOf(":");
    return { key: w, kind: Number(w.slice(0, colon)), name: new TextEncoder().encode(`${w.slice(colon + 1)}\0`) };
  });
  const named = (at: number, name: Uint8Array): boolean => {
    for (let i = 0; i < name.length; i++) if (blob[at + i] !== name[i]) return false;
    return true;
  };
  const found = new Map<string, BtfType>();
  for (let at = typeOff, id = 1; at < typeEnd && found.size < targets.length; id++) {
    const nameOff = v.getUint32(at, true);
    const info = v.getUint32(at + 4, true);
    const kind = (info >>> 24) & 0x1f;
    for (const t of targets) {
      if (t.kind === kind && nameOff !== 0 && named(strOff + nameOff, t.name)) found.set(t.key, { id, sizeOrType: v.getUint32(at + 8, true) });
    }
    at += 12 + trailing(kind, info & 0xffff);
  }
  return found;
}
