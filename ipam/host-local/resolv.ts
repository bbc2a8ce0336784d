// Reads a resolv.conf into a result's `dns`, as the reference's dns.go does: nameserver,
// domain, search and options lines; comments and anything else are skipped.
import { readText } from "../../shared/fs";
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { DNS } from "../../shared/cni/result";

export function parseResolvConf(path: string): DNS {
  let text: string;
  try {
    text = readText(path);
  } catch (e) {
    throw new CniError(ErrorCode.IO, `host-local: cannot read resolvConf ${path}: ${(e as Error).message}`);
  }
  const dns: Required<DNS> = { nameservers: [], domain: "", search: [], options: [] };
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    const [key, first] = fields;
    if (key === undefined || first === undefined || key.startsWith("#") || key.startsWith(";")) continue;
    switch (key) {
      case "nameserver":
        dns.nameservers.push(first);
        break;
      case "domain":
        dns.domain = first;
        break;
      case "search":
        dns.search.push(...fields.slice(1));
        break;
      case "options":
        dns.options.push(...fields.slice(1));
        break;
    }
  }
  return dns;
}
