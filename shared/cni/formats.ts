// IP literal checks for results and config schemas. Hand-written rather than node:net's
// isIP: importing node:net (or node:tty) costs Bun ~2-3 ms per process, more than the
// whole rest of a VERSION call. ajv ships no formats either (ajv-formats is separate).

const IPV4_OCTET = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const IPV6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function isIPv4(s: string): boolean {
  const parts = s.split(".");
  return parts.length === 4 && parts.every((p) => IPV4_OCTET.test(p));
}

// RFC 4291 text forms: eight groups, one "::" standing for at least one zero group, and
// an optional dotted IPv4 tail worth two groups. Zone ids ("%eth0") are not accepted.
function isIPv6(s: string): boolean {
  let body = s;
  if (s.includes(".")) {
    const lastColon = s.lastIndexOf(":");
    if (lastColon < 0 || !isIPv4(s.slice(lastColon + 1))) return false;
    body = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const halves = body.split("::");
  if (halves.length > 2) return false;
  const groups = halves.flatMap((h) => (h === "" ? [] : h.split(":")));
  if (!groups.every((g) => IPV6_GROUP.test(g))) return false;
  return halves.length === 2 ? groups.length < 8 : groups.length === 8;
}

// Same contract as node:net isIP: 4, 6, or 0 for "not an IP address".
export function ipFamily(s: string): 0 | 4 | 6 {
  if (isIPv4(s)) return 4;
  return s.includes(":") && isIPv6(s) ? 6 : 0;
}

// "10.1.0.0/16", "fd00::/64"; host bits may be set ("10.1.0.5/24" is a valid address).
export function isCidr(s: string): boolean {
  const slash = s.indexOf("/");
  if (slash <= 0) return false;
  const family = ipFamily(s.slice(0, slash));
  const len = s.slice(slash + 1);
  return family !== 0 && /^\d{1,3}$/.test(len) && Number(len) <= (family === 4 ? 32 : 128);
}

export const formats: Record<string, (s: string) => boolean> = {
  ip: (s) => ipFamily(s) !== 0,
  ipv4: (s) => ipFamily(s) === 4,
  ipv6: (s) => ipFamily(s) === 6,
  cidr: isCidr,
};
