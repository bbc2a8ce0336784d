// Specific addresses a caller asked for, from the three places the reference reads:
// CNI_ARGS "IP=", the config's args.cni.ips, and the `ips` capability in runtimeConfig.
import { CniError, ErrorCode } from "../../shared/cni/errors";
import { getRuntimeConfigKey } from "../../shared/cni/runtime-config";
import { formatIP, parseCIDR, parseIP, unmapped, type IP } from "../../shared/ip";

// "10.0.0.5" or "10.0.0.5/24": the `ips` capability sends the latter; the prefix is ignored.
function parseRequested(text: string, where: string, code: number): IP {
  const ip = parseIP(text) ?? parseCIDR(text)?.ip ?? null;
  if (ip === null) throw new CniError(code, `${where}: "${text}" is not an IP address`);
  return unmapped(ip); // ::ffff:10.0.0.7 asks for 10.0.0.7, as in the reference
}

function stringList(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new CniError(ErrorCode.InvalidConfig, `${where} must be a list of IP addresses`);
  }
  return value as string[];
}

/** The requested addresses, in the reference's order, without duplicates. */
export function requestedIPs(args: Map<string, string>, argsCniIps: readonly string[] | undefined, runtimeConfig: unknown): IP[] {
  const found: IP[] = [];
  // The reference takes one address here; a comma-separated list is accepted as well.
  const env = args.get("IP");
  if (env !== undefined && env !== "") {
    for (const s of env.split(",")) found.push(parseRequested(s.trim(), "CNI_ARGS IP", ErrorCode.InvalidEnv));
  }
  for (const s of argsCniIps ?? []) found.push(parseRequested(s, "args.cni.ips", ErrorCode.InvalidConfig));
  const capability = getRuntimeConfigKey(runtimeConfig, "ips");
  if (capability !== undefined && capability !== null) {
    for (const s of stringList(capability, "runtimeConfig.ips")) {
      found.push(parseRequested(s, "runtimeConfig.ips", ErrorCode.InvalidConfig));
    }
  }
  const seen = new Set<string>();
  return found.filter((ip) => {
    const key = formatIP(ip);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
