// IP address arithmetic for the whole project, IPv4 and IPv6 alike, on bigints.
// Our own code rather than the `ip-address` package: requiring that costs ~11 ms per
// process start, and every plugin invocation (one per pod) would pay it.

export type Family = 4 | 6;

/** An address: its family and its value as an unsigned integer of 32 or 128 bits. */
export interface IP {
  readonly family: Family;
  readonly value: bigint;
}

/** An address with a prefix length; `ip` is kept as written (host bits may be set). */
export interface IPNet {
  readonly ip: IP;
  readonly prefix: number;
}

const V4_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const V6_GROUP = /^[0-9a-f]{1,4}$/;
const PREFIX = /^(0|[1-9][0-9]{0,2})$/;

export function bitsOf(family: Family): 32 | 128 {
  return family === 4 ? 32 : 128;
}

function allOnes(family: Family): bigint {
  return (1n << BigInt(bitsOf(family))) - 1n;
}

function parseV4(s: string): bigint | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    // Leading zeros are refused, as Go does: "010" is octal to some parsers.
    if (!V4_OCTET.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

function parseV6Groups(side: string): number[] | null {
  if (side === "") return [];
  const groups: number[] = [];
  for (const g of side.split(":")) {
    if (!V6_GROUP.test(g)) return null;
    groups.push(parseInt(g, 16));
  }
  return groups;
}

function parseV6(input: string): bigint | null {
  let s = input.toLowerCase();
  // A trailing dotted quad (e.g. "::ffff:10.0.0.1") stands for the last two groups.
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".", lastColon)) {
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === null) return null;
    tail = [Number(v4 >> 16n), Number(v4 & 0xffffn)];
    // Keep a "::" just before the quad ("::1.2.3.4"); drop a lone separating colon.
    s = s.slice(0, lastColon + 1);
    if (!s.endsWith("::")) s = s.slice(0, -1);
  }
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const head = parseV6Groups(halves[0] ?? "");
  const rest = halves.length === 2 ? parseV6Groups(halves[1] ?? "") : [];
  if (head === null || rest === null) return null;
  const explicit = head.length + rest.length + tail.length;
  let groups: number[];
  if (halves.length === 2) {
    // "::" must stand for at least one zero group.
    if (explicit > 7) return null;
    groups = [...head, ...new Array<number>(8 - explicit).fill(0), ...rest, ...tail];
  } else {
    if (explicit !== 8) return null;
    groups = [...head, ...tail];
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/** Parses a textual IPv4 or IPv6 address (no zone, no prefix); null when invalid. */
export function parseIP(s: string): IP | null {
  if (s.includes(":")) {
    const value = parseV6(s);
    return value === null ? null : { family: 6, value };
  }
  const value = parseV4(s);
  return value === null ? null : { family: 4, value };
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it maps, as Go's To4() reads it; any other as it is. */
export function unmapped(ip: IP): IP {
  return ip.family === 6 && ip.value >> 32n === 0xffffn ? { family: 4, value: ip.value & 0xffffffffn } : ip;
}

export function isIPv4(s: string): boolean {
  return parseIP(s)?.family === 4;
}

export function isIPv6(s: string): boolean {
  return parseIP(s)?.family === 6;
}

function formatV4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
}

function formatV6(value: bigint): string {
  // IPv4-mapped addresses print with a dotted tail (RFC 5952 §5, Go's netip).
  if (value >> 32n === 0xffffn) return `::ffff:${formatV4(value & 0xffffffffn)}`;
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  // RFC 5952: compress the longest run (first on a tie) of two or more zero groups.
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(":");
  if (bestAt < 0) return hex(groups);
  return `${hex(groups.slice(0, bestAt))}::${hex(groups.slice(bestAt + bestLen))}`;
}

/** Canonical text: dotted quad for v4; RFC 5952 (compressed, lowercase) for v6, as Go prints. */
export function formatIP(ip: IP): string {
  return ip.family === 4 ? formatV4(ip.value) : formatV6(ip.value);
}

/** Parses "addr/prefix"; the address is kept as written. */
export function parseCIDR(s: string): IPNet | null {
  const slash = s.indexOf("/");
  if (slash < 0) return null;
  const ip = parseIP(s.slice(0, slash));
  const prefixText = s.slice(slash + 1);
  if (ip === null || !PREFIX.test(prefixText)) return null;
  const prefix = Number(prefixText);
  if (prefix > bitsOf(ip.family)) return null;
  return { ip, prefix };
}

/** The address part of "addr/prefix" text, as written ("10.0.0.2/24" → "10.0.0.2"); unparsed. */
export function addressOf(cidr: string): string {
  const slash = cidr.indexOf("/");
  return slash < 0 ? cidr : cidr.slice(0, slash);
}

export function formatCIDR(ip: IP, prefix: number): string {
  return `${formatIP(ip)}/${prefix}`;
}

function maskValue(prefix: number, family: Family): bigint {
  const hostBits = BigInt(bitsOf(family) - prefix);
  return allOnes(family) ^ ((1n << hostBits) - 1n);
}

/** The netmask of a prefix length, as an address (e.g. 255.255.255.0 for /24). */
export function maskOf(prefix: number, family: Family): IP {
  return { family, value: maskValue(prefix, family) };
}

/** The first address of the network (host bits cleared). */
export function networkOf(net: IPNet): IP {
  return { family: net.ip.family, value: net.ip.value & maskValue(net.prefix, net.ip.family) };
}

/** The last address of the network (host bits set): the broadcast address for IPv4. */
export function lastOf(net: IPNet): IP {
  const { family } = net.ip;
  return { family, value: net.ip.value | (allOnes(family) ^ maskValue(net.prefix, family)) };
}

export function contains(net: IPNet, ip: IP): boolean {
  if (ip.family !== net.ip.family) return false;
  const mask = maskValue(net.prefix, ip.family);
  return (ip.value & mask) === (net.ip.value & mask);
}

/** True when every address of `inner` is in `outer`. */
export function containsNet(outer: IPNet, inner: IPNet): boolean {
  return outer.prefix <= inner.prefix && contains(outer, inner.ip);
}

/** True when the two networks share at least one address. */
export function overlaps(a: IPNet, b: IPNet): boolean {
  if (a.ip.family !== b.ip.family) return false;
  // Two prefixes overlap iff they agree on the bits of the shorter one.
  const mask = maskValue(Math.min(a.prefix, b.prefix), a.ip.family);
  return (a.ip.value & mask) === (b.ip.value & mask);
}

/** The following address; wraps to the zero address after the last one. */
export function nextIP(ip: IP): IP {
  return { family: ip.family, value: (ip.value + 1n) & allOnes(ip.family) };
}

/** The preceding address; wraps to the all-ones address before the zero one. */
export function prevIP(ip: IP): IP {
  return { family: ip.family, value: (ip.value - 1n) & allOnes(ip.family) };
}

/** Orders IPv4 before IPv6, then by value; returns -1, 0 or 1. */
export function compareIP(a: IP, b: IP): -1 | 0 | 1 {
  if (a.family !== b.family) return a.family < b.family ? -1 : 1;
  if (a.value === b.value) return 0;
  return a.value < b.value ? -1 : 1;
}

/** Network byte order: 4 bytes for IPv4, 16 for IPv6. */
export function ipToBytes(ip: IP): Buffer {
  const len = bitsOf(ip.family) / 8;
  const buf = Buffer.alloc(len);
  let v = ip.value;
  for (let i = len - 1; i >= 0; i--) {
    buf[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return buf;
}

/** The bytes of an address weft already holds as valid text (from the kernel or its own records). */
export function addressBytes(ip: string): Buffer {
  const parsed = parseIP(ip);
  if (!parsed) throw new RangeError(`not an IP address: "${ip}"`);
  return ipToBytes(parsed);
}

/** Reads 4 bytes as IPv4 or 16 as IPv6 (network byte order). Throws on any other
 *  length: bytes come from the kernel or our own encoder, so that is a bug, not input. */
export function ipFromBytes(bytes: Uint8Array): IP {
  if (bytes.length !== 4 && bytes.length !== 16) {
    throw new RangeError(`an IP address is 4 or 16 bytes, not ${bytes.length}`);
  }
  let value = 0n;
  // Indexed: for-of over a typed array runs JSC's iterator built-ins (~0.3 ms cold per call of a plugin).
  for (let i = 0; i < bytes.length; i++) value = (value << 8n) | BigInt(bytes[i]!);
  return { family: bytes.length === 4 ? 4 : 6, value };
}
