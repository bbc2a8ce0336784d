// Netlink wire encoding: the fixed headers and attribute framing weft needs, and nothing
// more. Our own rather than the `netlink` package's generated codec (~220 KB of JS, plus
// `os` for its framing helpers), which cost every plugin call ~2 ms and ~2 MB of peak RSS.
// Netlink is host-endian; every platform Bun runs on is little-endian.
// Plain loops rather than generators, reduce() or Buffer.from(string): each of those costs a
// plugin call 0.1-0.2 ms the first time the process uses it (JSC compiles its built-ins
// lazily), and these functions run on every call.

const NLA_HDRLEN = 4;
const NLA_F_NESTED = 0x8000;
/** Clears NLA_F_NESTED / NLA_F_NET_BYTEORDER, which the kernel sets on some attributes it sends. */
const NLA_TYPE_MASK = 0x3fff;

/** Netlink aligns messages and attributes to 4 bytes. */
export const align4 = (n: number): number => (n + 3) & ~3;

/**
 * One attribute, padded so whatever follows starts aligned. `nested` sets NLA_F_NESTED,
 * which some kernel parsers demand (IFLA_LINKINFO, IFLA_AF_SPEC, nf_tables lists).
 */
export function attr(type: number, data: Uint8Array | Uint8Array[], nested = false): Buffer {
  const parts = Array.isArray(data) ? data : [data];
  let len = NLA_HDRLEN;
  for (const p of parts) len += p.length;
  if (len > 0xffff) throw new Error(`netlink attribute ${type} too long (${len} bytes)`);
  const b = Buffer.alloc(align4(len));
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type | (nested ? NLA_F_NESTED : 0), 2);
  let off = NLA_HDRLEN;
  for (const p of parts) {
    b.set(p, off);
    off += p.length;
  }
  return b;
}

/**
 * Calls `visit` with each attribute in `buf`, in order, until it returns true; throws on a
 * length that runs past the end.
 */
function walk(buf: Buffer, visit: (type: number, data: Buffer) => boolean | void): void {
  for (let off = 0; off + NLA_HDRLEN <= buf.length; ) {
    const len = buf.readUInt16LE(off);
    if (len < NLA_HDRLEN || off + len > buf.length) throw new Error(`malformed netlink attribute (length ${len} at ${off})`);
    if (visit(buf.readUInt16LE(off + 2) & NLA_TYPE_MASK, buf.subarray(off + NLA_HDRLEN, off + len))) return;
    off += align4(len);
  }
}

/** The attributes in `buf`, in order, as [type, payload]. */
export function attrList(buf: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  walk(buf, (type, data) => {
    out.push([type, data]);
  });
  return out;
}

/** The attributes in `buf` by type (of a repeated type, the last). */
export function attrMap(buf: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  walk(buf, (type, data) => {
    out.set(type, data);
  });
  return out;
}

/** The first attribute of `type` in `buf`; what follows it is not read. */
export function findAttr(buf: Buffer, type: number): Buffer | undefined {
  let found: Buffer | undefined;
  walk(buf, (t, data) => {
    if (t === type) found = data;
    return t === type;
  });
  return found;
}

type Field = readonly [offset: number, bytes: 1 | 2 | 4];

/** A fixed-size header of unsigned host-order fields; fields left out encode as 0. */
function struct<K extends string>(size: number, fields: Record<K, Field>) {
  return {
    size,
    format(values: Partial<Record<K, number>>): Buffer {
      const b = Buffer.alloc(size);
      for (const k in values) {
        const [offset, bytes]: Field = fields[k];
        b.writeUIntLE(values[k] ?? 0, offset, bytes);
      }
      return b;
    },
    parse(msg: Buffer): Record<K, number> {
      if (msg.length < size) throw new Error(`netlink message of ${msg.length} bytes, shorter than its ${size}-byte header`);
      const out = {} as Record<K, number>;
      for (const k in fields) {
        const [offset, bytes]: Field = fields[k];
        out[k] = msg.readUIntLE(offset, bytes);
      }
      return out;
    },
    /** The message's attributes, past this header. */
    attrs(msg: Buffer): Map<number, Buffer> {
      return attrMap(msg.subarray(size));
    },
    /** The message's first attribute of `type`, past this header. */
    findAttr(msg: Buffer, type: number): Buffer | undefined {
      return findAttr(msg.subarray(size), type);
    },
  };
}

/** The rtnetlink address family (AF_INET, AF_INET6) of IP family 4 or 6. */
export const afOf = (family: 4 | 6): number => (family === 4 ? 2 : 10);

export const nlmsghdr = struct(16, { len: [0, 4], type: [4, 2], flags: [6, 2], seq: [8, 4], port: [12, 4] });
export const ifinfomsg = struct(16, { family: [0, 1], type: [2, 2], index: [4, 4], flags: [8, 4], change: [12, 4] });
export const ifaddrmsg = struct(8, { family: [0, 1], prefixlen: [1, 1], flags: [2, 1], scope: [3, 1], index: [4, 4] });
export const rtmsg = struct(12, {
  family: [0, 1],
  dstLen: [1, 1],
  srcLen: [2, 1],
  tos: [3, 1],
  table: [4, 1],
  protocol: [5, 1],
  scope: [6, 1],
  type: [7, 1],
  flags: [8, 4],
});
export const ndmsg = struct(12, { family: [0, 1], index: [4, 4], state: [8, 2], flags: [10, 1], type: [11, 1] });
/** nfgenmsg: family, then version (NFNETLINK_V0) and res_id, both 0. */
export const nfgenmsg = struct(4, { family: [0, 1] });

export function u8(n: number): Buffer {
  const b = Buffer.alloc(1);
  b[0] = n;
  return b;
}

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** Network byte order, for the few attributes the kernel wants that way. */
export function be16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/**
 * `s` in UTF-8, then `nuls` zero bytes: sized for the worst case (3 bytes per UTF-16 unit)
 * and cut to what write() wrote, so no separate length pass.
 */
function encode(s: string, nuls: number): Buffer {
  const b = Buffer.alloc(s.length * 3 + nuls);
  return b.subarray(0, b.write(s) + nuls);
}

/** A string's UTF-8 bytes. */
export const utf8 = (s: string): Buffer => encode(s, 0);

/** A NUL-terminated string, as the kernel expects names and kinds. */
export const strz = (s: string): Buffer => encode(s, 1);

/** The text of a NUL-terminated (or NUL-padded) string attribute. */
export function cstr(b: Buffer): string {
  const end = b.indexOf(0);
  return b.toString("utf8", 0, end < 0 ? b.length : end);
}
