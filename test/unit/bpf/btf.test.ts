import { describe, expect, it } from "vitest";
import { findBtfTypes, KIND_FUNC, KIND_STRUCT, type ReadAt } from "../../../shared/bpf/btf";

const reader = (b: Buffer): ReadAt => (position, length) => b.subarray(position, position + length);

/** A BTF blob: the header, then `types` (each its 12-byte header and trailing bytes), then `strings`. */
function blob(types: Array<{ name: number; kind: number; vlen?: number; sizeOrType: number; trailing?: number }>, strings: string): Buffer {
  const typeLen = types.reduce((n, t) => n + 12 + (t.trailing ?? 0), 0);
  const str = new TextEncoder().encode(strings);
  const out = Buffer.alloc(24 + typeLen + str.length);
  const v = new DataView(out.buffer);
  v.setUint16(0, 0xeb9f, true);
  v.setUint32(4, 24, true); // hdr_len
  v.setUint32(8, 0, true); // type_off
  v.setUint32(12, typeLen, true);
  v.setUint32(16, typeLen, true); // str_off
  v.setUint32(20, str.length, true);
  let at = 24;
  for (const t of types) {
    v.setUint32(at, t.name, true);
    v.setUint32(at + 4, (t.kind << 24) | (t.vlen ?? 0), true);
    v.setUint32(at + 8, t.sizeOrType, true);
    at += 12 + (t.trailing ?? 0);
  }
  out.set(str, at);
  return out;
}

describe("findBtfTypes", () => {
  // Offsets into the strings: 1 "bpf_ct_opts", 13 "bpf_ct_release", 28 "bpf_ct_opts_x".
  const strings = "\0bpf_ct_opts\0bpf_ct_release\0bpf_ct_opts_x\0";

  it("finds funcs and structs by exact name, stepping over each kind's trailing data", () => {
    const b = blob(
      [
        { name: 0, kind: 1, sizeOrType: 4, trailing: 4 }, // 1: INT
        { name: 28, kind: KIND_STRUCT, vlen: 2, sizeOrType: 99, trailing: 24 }, // 2: a longer name
        { name: 0, kind: 13, vlen: 3, sizeOrType: 0, trailing: 24 }, // 3: FUNC_PROTO
        { name: 13, kind: KIND_FUNC, sizeOrType: 3 }, // 4
        { name: 0, kind: 19, vlen: 1, sizeOrType: 8, trailing: 12 }, // 5: ENUM64
        { name: 0, kind: 17, sizeOrType: 4, trailing: 4 }, // 6: DECL_TAG
        { name: 1, kind: KIND_STRUCT, vlen: 1, sizeOrType: 16, trailing: 12 }, // 7
      ],
      strings,
    );
    const wanted = [`${KIND_FUNC}:bpf_ct_release`, `${KIND_STRUCT}:bpf_ct_opts`, `${KIND_FUNC}:bpf_ct_opts`];
    // Read whole, and a few bytes at a time: names and records then straddle the reads.
    for (const size of [undefined, 8]) {
      expect(Object.fromEntries(findBtfTypes(reader(b), wanted, size))).toEqual({
        [`${KIND_FUNC}:bpf_ct_release`]: { id: 4, sizeOrType: 3 },
        [`${KIND_STRUCT}:bpf_ct_opts`]: { id: 7, sizeOrType: 16 },
      });
    }
  });

  it("refuses what is not BTF", () => {
    expect(() => findBtfTypes(reader(Buffer.alloc(32)), [])).toThrow(/not BTF/);
  });
});
