// The `ipam` section of a network config for host-local: schema check, then the
// semantic checks and defaults of the reference plugin (allocator/config.go, range.go).
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { Route } from "../../shared/cni/result";
import { compileValidator } from "../../shared/cni/validate";
import {
  bitsOf,
  compareIP,
  contains,
  formatCIDR,
  formatIP,
  lastOf,
  networkOf,
  nextIP,
  parseCIDR,
  parseIP,
  prevIP,
  unmapped,
  type IP,
  type IPNet,
} from "../../shared/ip";
import { ipamSchema, rangeSetsSchema } from "./schema";

/** One allocatable range, canonicalised: every field set, all of one family. */
export interface Range {
  /** The subnet, as its network address and prefix. */
  readonly subnet: IPNet;
  readonly rangeStart: IP;
  readonly rangeEnd: IP;
  /** Never handed out; reported as the gateway of addresses from this range. */
  readonly gateway: IP;
}

/** Ranges of one family; one address per range set is allocated to each container. */
export type RangeSet = readonly Range[];

export interface HostLocalConfig {
  readonly type: "host-local";
  readonly ranges: readonly RangeSet[];
  readonly routes: readonly Route[];
  readonly dataDir: string;
  readonly resolvConf?: string;
}

export const DEFAULT_DATA_DIR = "/var/lib/cni/networks";

// CNI spec's network name rule; it also keeps the name a single safe path component.
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

interface RawRange {
  subnet: string;
  rangeStart?: string;
  rangeEnd?: string;
  gateway?: string;
}

interface RawIpam extends Partial<RawRange> {
  type: "host-local";
  ranges?: RawRange[][];
  routes?: Route[];
  dataDir?: string;
  resolvConf?: string;
}

const validateIpam = compileValidator<RawIpam>(ipamSchema, "host-local ipam");
const validateRuntimeRanges = compileValidator<RawRange[][]>(rangeSetsSchema, "runtimeConfig.ipRanges");

function invalid(msg: string): never {
  throw new CniError(ErrorCode.InvalidConfig, msg);
}

/** An address of the config, IPv4-mapped ones read as IPv4 (as the reference's canonicalizeIP). */
function ipOf(text: string, where: string): IP {
  const ip = parseIP(text);
  if (ip === null) invalid(`${where}: invalid IP address "${text}"`);
  return unmapped(ip);
}

function ipField(text: string, where: string, subnet: IPNet): IP {
  const ip = ipOf(text, where);
  if (!contains(subnet, ip)) invalid(`${where}: ${formatIP(ip)} is not in subnet ${formatCIDR(subnet.ip, subnet.prefix)}`);
  return ip;
}

export function rangeString(r: Range): string {
  return `${formatIP(r.rangeStart)}-${formatIP(r.rangeEnd)}`;
}

export function rangeSetString(set: RangeSet): string {
  return set.map(rangeString).join(",");
}

function canonicalRange(raw: RawRange, where: string): Range {
  const written = parseCIDR(raw.subnet);
  if (written === null) invalid(`${where}.subnet: invalid CIDR "${raw.subnet}"`);
  const subnet: IPNet = { ip: networkOf(written), prefix: written.prefix };
  const cidr = formatCIDR(subnet.ip, subnet.prefix);
  // A /31 or /32 (/127, /128) leaves nothing once the network and gateway are taken.
  if (subnet.prefix > bitsOf(subnet.ip.family) - 2) invalid(`${where}.subnet: network ${cidr} too small to allocate from`);
  if (compareIP(subnet.ip, written.ip) !== 0) {
    invalid(`${where}.subnet: "${raw.subnet}" has host bits set; the network address of a /${subnet.prefix} is ${formatIP(subnet.ip)}`);
  }
  const first = nextIP(subnet.ip);
  // IPv4 keeps its broadcast address out of the default range; IPv6 has none.
  const last = subnet.ip.family === 4 ? prevIP(lastOf(subnet)) : lastOf(subnet);
  const r: Range = {
    subnet,
    // Anywhere, as the reference allows (it is only reported, and kept out of the range).
    gateway: raw.gateway === undefined ? first : ipOf(raw.gateway, `${where}.gateway`),
    rangeStart: raw.rangeStart === undefined ? first : ipField(raw.rangeStart, `${where}.rangeStart`, subnet),
    rangeEnd: raw.rangeEnd === undefined ? last : ipField(raw.rangeEnd, `${where}.rangeEnd`, subnet),
  };
  if (compareIP(r.rangeStart, r.rangeEnd) > 0) {
    invalid(`${where}: rangeStart ${formatIP(r.rangeStart)} is after rangeEnd ${formatIP(r.rangeEnd)}`);
  }
  return r;
}

function rangesOverlap(a: Range, b: Range): boolean {
  return (
    a.subnet.ip.family === b.subnet.ip.family &&
    compareIP(a.rangeStart, b.rangeEnd) <= 0 &&
    compareIP(b.rangeStart, a.rangeEnd) <= 0
  );
}

function canonicalRangeSet(raw: RawRange[], where: string, itemWhere = (i: number) => `${where}[${i}]`): RangeSet {
  const set = raw.map((r, i) => canonicalRange(r, itemWhere(i)));
  const family = set[0]?.subnet.ip.family;
  // Pairwise loops (here and below) rather than forEach over slices: every plugin call
  // parses its config, and forEach would cost it ~0.1 ms of cold JSC built-in.
  for (const r of set) if (r.subnet.ip.family !== family) invalid(`${where}: a range set must not mix IPv4 and IPv6`);
  for (let i = 0; i < set.length; i++) {
    for (let j = i + 1; j < set.length; j++) {
      if (rangesOverlap(set[i]!, set[j]!)) invalid(`${where}: ranges ${rangeString(set[i]!)} and ${rangeString(set[j]!)} overlap`);
    }
  }
  return set;
}

// Range sets are checked pairwise, as the reference does, so its message stays the same.
function checkSetsDisjoint(sets: readonly RangeSet[]): void {
  for (let i = 0; i < sets.length; i++) {
    for (let j = i + 1; j < sets.length; j++) {
      for (const ra of sets[i]!) {
        for (const rb of sets[j]!) if (rangesOverlap(ra, rb)) invalid(`range set ${i} overlaps with ${j}`);
      }
    }
  }
}

// Route attributes of spec 1.1.0, copied through; unknown keys are dropped.
const ROUTE_ATTRS = ["mtu", "advmss", "priority", "table", "scope"] as const;

function canonicalRoute(raw: Route, where: string): Route {
  const dst = parseCIDR(raw.dst);
  if (dst === null) invalid(`${where}.dst: invalid CIDR "${raw.dst}"`);
  const route: Route = { dst: formatCIDR(dst.ip, dst.prefix) };
  // A gateway of the other family is passed on, as the reference does: the plugin that
  // installs the route decides.
  if (raw.gw !== undefined) route.gw = formatIP(ipOf(raw.gw, `${where}.gw`));
  for (const k of ROUTE_ATTRS) if (raw[k] !== undefined) route[k] = raw[k];
  return route;
}

/**
 * Validates a network config's `ipam` object, with the range sets of the runtime's
 * `ipRanges` capability (runtimeConfig.ipRanges) put first, as the reference does: a
 * network may take all of its ranges from the runtime. Throws CniError code 7 on any problem.
 */
export function parseHostLocalConfig(rawIpam: unknown, networkName: string, runtimeIpRanges?: unknown): HostLocalConfig {
  // The name is the data directory's subfolder, so it must be present and path-safe.
  if (!NETWORK_NAME.test(networkName)) {
    invalid(`network name "${networkName}" is missing or invalid (it must match ${NETWORK_NAME.source})`);
  }
  const raw = validateIpam(rawIpam);
  const runtime = runtimeIpRanges == null ? [] : validateRuntimeRanges(runtimeIpRanges);
  // Without a subnet, a top-level rangeStart, rangeEnd or gateway is ignored, as the reference does.
  const legacy = raw.subnet !== undefined;
  // Runtime sets first, then the legacy single range, then ipam.ranges.
  const ranges: RangeSet[] = [];
  for (let i = 0; i < runtime.length; i++) ranges.push(canonicalRangeSet(runtime[i]!, `runtimeConfig.ipRanges[${i}]`));
  if (legacy) {
    ranges.push(canonicalRangeSet([{ subnet: raw.subnet!, rangeStart: raw.rangeStart, rangeEnd: raw.rangeEnd, gateway: raw.gateway }], "ipam", () => "ipam"));
  }
  const sets = raw.ranges ?? [];
  for (let i = 0; i < sets.length; i++) ranges.push(canonicalRangeSet(sets[i]!, `ipam.ranges[${i}]`));
  if (ranges.length === 0) invalid("no IP ranges specified (set ipam.ranges or ipam.subnet, or pass runtimeConfig.ipRanges)");
  checkSetsDisjoint(ranges);
  const config: HostLocalConfig = {
    type: "host-local",
    ranges,
    routes: (raw.routes ?? []).map((r, i) => canonicalRoute(r, `ipam.routes[${i}]`)),
    // Empty means the default, as in the reference's disk store.
    dataDir: raw.dataDir || DEFAULT_DATA_DIR,
  };
  return raw.resolvConf ? { ...config, resolvConf: raw.resolvConf } : config;
}
