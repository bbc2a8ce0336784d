// The internal result (1.x shape), its per-version JSON forms, and prevResult decoding.
import { CniError, ErrorCode } from "./errors";
import { isObject } from "./fold-keys";
import { ipFamily, isCidr } from "./formats";
import { compareVersions, isSupported } from "./version";

export interface Interface { name: string; mac?: string; mtu?: number; sandbox?: string; socketPath?: string; pciID?: string }
export interface IPConfig { address: string /* CIDR "10.1.0.5/24" */; gateway?: string; interface?: number }
export interface Route { dst: string; gw?: string; mtu?: number; advmss?: number; priority?: number; table?: number; scope?: number }
export interface DNS { nameservers?: string[]; domain?: string; search?: string[]; options?: string[] }
export interface Result { cniVersion: string; interfaces?: Interface[]; ips?: IPConfig[]; routes?: Route[]; dns?: DNS }

type Json = Record<string, unknown>;

// Copies the listed keys that are set, in the listed order (the order Go prints them).
function pick(src: object, keys: readonly string[]): Json {
  const out: Json = {};
  for (const k of keys) {
    const v = (src as Json)[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}

// Fields as the reference library prints them: 1.0.0 and 1.1.0 share one interface type
// (with mtu/socketPath/pciID), older versions have their own; every version shares the
// route type, so the route attributes pass through a conversion to any of them.
const IFACE_KEYS_1 = ["name", "mac", "mtu", "sandbox", "socketPath", "pciID"] as const;
const IFACE_KEYS_OLD = ["name", "mac", "sandbox"] as const;
const ROUTE_KEYS = ["dst", "gw", "mtu", "advmss", "priority", "table", "scope"] as const;

function dnsJson(dns: DNS | undefined): Json {
  const out: Json = {};
  if (!dns) return out;
  // Go's omitempty drops empty strings and lists; match it so outputs compare equal.
  if (dns.nameservers?.length) out["nameservers"] = dns.nameservers;
  if (dns.domain) out["domain"] = dns.domain;
  if (dns.search?.length) out["search"] = dns.search;
  if (dns.options?.length) out["options"] = dns.options;
  return out;
}

export function convertResult(r: Result, toVersion: string): object {
  if (!isSupported(toVersion)) {
    throw new CniError(ErrorCode.IncompatibleVersion, `cannot convert result to unsupported version "${toVersion}"`);
  }
  // 0.3.x/0.4.0 carry ips[].version; 1.0.0 dropped it.
  const withIpVersion = compareVersions(toVersion, "1.0.0") < 0;
  const out: Json = { cniVersion: toVersion };
  if (r.interfaces?.length) out["interfaces"] = r.interfaces.map((i) => pick(i, withIpVersion ? IFACE_KEYS_OLD : IFACE_KEYS_1));
  if (r.ips?.length) {
    out["ips"] = r.ips.map((ip) => {
      const o: Json = withIpVersion ? { version: ip.address.includes(":") ? "6" : "4" } : {};
      return Object.assign(o, pick(ip, ["interface", "address", "gateway"]));
    });
  }
  if (r.routes?.length) out["routes"] = r.routes.map((rt) => pick(rt, ROUTE_KEYS));
  // The reference plugins print "dns": {} even when empty; keep byte-level parity.
  out["dns"] = dnsJson(r.dns);
  return out;
}

// ---- prevResult decoding: hand-written because it is small and needs IP checks. ----
// JSON null counts as absent throughout, as it does for the Go decoder.

function fail(path: string, problem: string): never {
  throw new CniError(ErrorCode.Decode, `invalid prevResult: ${path} ${problem}`);
}

function list(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) fail(path, "must be an array");
  return v;
}

function obj(v: unknown, path: string): Json {
  if (!isObject(v)) fail(path, "must be an object");
  return v;
}

function optString(o: Json, key: string, path: string): string | undefined {
  const v = o[key];
  if (v == null) return undefined;
  if (typeof v !== "string") fail(`${path}.${key}`, "must be a string");
  return v;
}

function optInt(o: Json, key: string, path: string, min: number): number | undefined {
  const v = o[key];
  if (v == null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) fail(`${path}.${key}`, `must be an integer >= ${min}`);
  return v;
}

function optStrings(o: Json, key: string, path: string): string[] | undefined {
  const v = o[key];
  if (v == null) return undefined;
  const l = list(v, `${path}.${key}`);
  l.forEach((s, i) => { if (typeof s !== "string") fail(`${path}.${key}[${i}]`, "must be a string"); });
  return l as string[];
}

function checkCidr(s: string, path: string): void {
  if (!isCidr(s)) fail(path, `must be an IP address with prefix length, got "${s}"`);
}

function optIp(o: Json, key: string, path: string): string | undefined {
  const v = optString(o, key, path);
  // "" is no address, as Go's net.IP reads it (a result written by another runtime may hold one).
  if (v === "") return undefined;
  if (v !== undefined && ipFamily(v) === 0) fail(`${path}.${key}`, `must be an IP address, got "${v}"`);
  return v;
}

// Sets only the fields that are present, so a decoded result re-encodes unchanged.
function defined<T extends object>(o: T): T {
  for (const k of Object.keys(o) as (keyof T)[]) if (o[k] === undefined) delete o[k];
  return o;
}

function parseInterface(v: unknown, path: string): Interface {
  const o = obj(v, path);
  const name = optString(o, "name", path);
  if (name === undefined) fail(`${path}.name`, "is required");
  return defined({
    name,
    mac: optString(o, "mac", path),
    mtu: optInt(o, "mtu", path, 0),
    sandbox: optString(o, "sandbox", path),
    socketPath: optString(o, "socketPath", path),
    pciID: optString(o, "pciID", path),
  });
}

function parseIp(v: unknown, path: string): IPConfig {
  const o = obj(v, path);
  const address = optString(o, "address", path);
  if (address === undefined) fail(`${path}.address`, "is required");
  checkCidr(address, `${path}.address`);
  // "version" (0.3.x/0.4.0) is implied by the address and deliberately not read.
  return defined({ address, gateway: optIp(o, "gateway", path), interface: optInt(o, "interface", path, 0) });
}

function parseRoute(v: unknown, path: string): Route {
  const o = obj(v, path);
  const dst = optString(o, "dst", path);
  if (dst === undefined) fail(`${path}.dst`, "is required");
  checkCidr(dst, `${path}.dst`);
  return defined({
    dst,
    gw: optIp(o, "gw", path),
    mtu: optInt(o, "mtu", path, 0),
    advmss: optInt(o, "advmss", path, 0),
    priority: optInt(o, "priority", path, 0),
    table: optInt(o, "table", path, 0),
    scope: optInt(o, "scope", path, 0),
  });
}

// A prevResult in any supported version's shape, read as the config's version (libcni
// converts chained results to it before calling the next plugin).
export function parsePrevResult(raw: unknown, confVersion: string): Result {
  const o = obj(raw, "prevResult");
  const v = o["cniVersion"];
  if (v != null && !isSupported(v)) {
    throw new CniError(ErrorCode.IncompatibleVersion, `prevResult has unsupported cniVersion ${JSON.stringify(v)}`);
  }
  const r: Result = { cniVersion: confVersion };
  if (o["interfaces"] != null) r.interfaces = list(o["interfaces"], "interfaces").map((x, i) => parseInterface(x, `interfaces[${i}]`));
  if (o["ips"] != null) r.ips = list(o["ips"], "ips").map((x, i) => parseIp(x, `ips[${i}]`));
  if (o["routes"] != null) r.routes = list(o["routes"], "routes").map((x, i) => parseRoute(x, `routes[${i}]`));
  if (o["dns"] != null) {
    const d = obj(o["dns"], "dns");
    r.dns = defined({
      nameservers: optStrings(d, "nameservers", "dns"),
      domain: optString(d, "domain", "dns"),
      search: optStrings(d, "search", "dns"),
      options: optStrings(d, "options", "dns"),
    });
  }
  return r;
}
