// MAC addresses as text ("02:0a:ff:00:10:09") and bytes: netlink carries bytes, CNI
// results, configs and the agent's VTEP addresses carry text.

/** Six (or any number of) bytes as lower-case, zero-padded hex pairs joined by ":". */
export function formatMac(b: Uint8Array): string {
  // A loop: spreading a Buffer into map() costs every ADD ~0.3 ms of cold JSC built-ins.
  let s = "";
  for (let i = 0; i < b.length; i++) s += `${i ? ":" : ""}${b[i]! < 16 ? "0" : ""}${b[i]!.toString(16)}`;
  return s;
}

/**
 * "aa:bb:cc:dd:ee:ff", "aa-bb-…" or "aabb.ccdd.eeff" (any case, the forms Go's ParseMAC
 * reads) as six bytes; throws on anything else.
 */
export function parseMac(s: string): Buffer {
  // A loop over the text, not split()/regex/map(): a MAC the config asks for comes through
  // here on an ADD, where each first use of a built-in costs.
  const b = Buffer.alloc(6);
  // Where byte i's two digits start, and what must follow them.
  const dotted = s.length === 14;
  let ok = s.length === 17 || dotted;
  for (let i = 0; ok && i < 6; i++) {
    const at = dotted ? 5 * (i >> 1) + 2 * (i & 1) : 3 * i;
    const hi = hexDigit(s.charCodeAt(at));
    const lo = hexDigit(s.charCodeAt(at + 1));
    const sep = s[at + 2];
    ok = hi >= 0 && lo >= 0 && (i === 5 || (dotted ? !(i & 1) || sep === "." : sep === ":" || sep === "-"));
    b[i] = hi * 16 + lo;
  }
  if (!ok) throw new Error(`invalid MAC address "${s}"`);
  return b;
}

/** The value of a hex digit's character code; -1 for anything else. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  const l = c | 0x20; // ASCII lower case
  return l >= 97 && l <= 102 ? l - 87 : -1; // a-f
}
