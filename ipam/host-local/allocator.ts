// Picks and reserves one address from a range set, with the reference allocator's
// strategy (allocator.go): round-robin, resuming after the address last handed out, so a
// crash-looping container does not get the same address back until the set wraps.
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { IPConfig } from "../../shared/cni/result";
import { compareIP, formatCIDR, formatIP, lastOf, nextIP, type IP } from "../../shared/ip";
import { rangeSetString, type Range, type RangeSet } from "./config";
import { ownedBy, type Store } from "./store";

function inRange(r: Range, ip: IP): boolean {
  return ip.family === r.rangeStart.family && compareIP(ip, r.rangeStart) >= 0 && compareIP(ip, r.rangeEnd) <= 0;
}

/** The index of the range of `set` holding `ip`, or -1. */
function rangeIndexOf(set: RangeSet, ip: IP): number {
  for (let i = 0; i < set.length; i++) if (inRange(set[i]!, ip)) return i;
  return -1;
}

export function rangeSetContains(set: RangeSet, ip: IP): boolean {
  return rangeIndexOf(set, ip) >= 0;
}

// Why an address inside a range may still not be handed out, or null if it may.
function unusable(r: Range, ip: IP): string | null {
  if (compareIP(ip, r.gateway) === 0) return "is subnet's gateway";
  // The reference leaves these to the range defaults; we also refuse them when an
  // explicit rangeStart/rangeEnd includes them, since no host can use them.
  if (compareIP(ip, r.subnet.ip) === 0) return "is the subnet's network address";
  if (ip.family === 4 && compareIP(ip, lastOf(r.subnet)) === 0) return "is the subnet's broadcast address";
  return null;
}

/** Addresses `from` to `to` of range `r`, both included. */
interface Span {
  r: Range;
  from: IP;
  to: IP;
}

// Every address of the set once, as spans: ranges in order, cyclically from just after
// `last` (or from the first range's start when `last` is unknown or no longer in the set).
// Spans walked in loops rather than generators: JSC's generator machinery costs a process
// ~0.2 ms the first time it runs, and this runs on every ADD.
function walk(set: RangeSet, last: IP | null): Span[] {
  const whole = (r: Range): Span => ({ r, from: r.rangeStart, to: r.rangeEnd });
  const at = last === null ? -1 : rangeIndexOf(set, last);
  const first = set[at];
  if (last === null || first === undefined) return set.map(whole);
  const spans: Span[] = [];
  // Guarded: nextIP wraps at the top of the address space.
  if (compareIP(last, first.rangeEnd) < 0) spans.push({ r: first, from: nextIP(last), to: first.rangeEnd });
  for (let k = 1; k < set.length; k++) spans.push(whole(set[(at + k) % set.length]!));
  spans.push({ r: first, from: first.rangeStart, to: last });
  return spans;
}

function fail(msg: string): never {
  throw new CniError(ErrorCode.Internal, msg);
}

export interface Allocation {
  readonly ip: IP;
  readonly config: IPConfig;
}

function allocation(ip: IP, r: Range): Allocation {
  return { ip, config: { address: formatCIDR(ip, r.subnet.prefix), gateway: formatIP(r.gateway) } };
}

/**
 * Reserves `requested`, or else the next free address, from range set `setIndex` for the
 * attachment. The caller holds the store's lock.
 */
export function allocateFrom(
  store: Store,
  set: RangeSet,
  setIndex: number,
  containerId: string,
  ifname: string,
  requested: IP | null,
): Allocation {
  if (requested !== null) {
    const r = set[rangeIndexOf(set, requested)];
    if (r === undefined) fail(`requested IP address ${formatIP(requested)} is not in range set ${rangeSetString(set)}`);
    const why = unusable(r, requested);
    if (why !== null) fail(`requested ip ${formatIP(requested)} ${why}`);
    if (!store.reserve(requested, containerId, ifname, setIndex)) {
      fail(`requested IP address ${formatIP(requested)} is not available in range set ${rangeSetString(set)}`);
    }
    return allocation(requested, r);
  }

  const all = store.reservations();
  // Known-taken addresses are skipped without a syscall each; reserve()'s O_EXCL still decides.
  const taken = new Set<string>();
  for (const res of all) {
    // The spec forbids two addresses from one set for an attachment; the reference errors too.
    if (ownedBy(res, containerId, ifname) && rangeSetContains(set, res.ip)) {
      fail(`${formatIP(res.ip)} has been allocated to ${containerId}, duplicate allocation is not allowed`);
    }
    taken.add(formatIP(res.ip));
  }
  for (const { r, from, to } of walk(set, store.lastReserved(setIndex))) {
    for (let value = from.value; value <= to.value; value++) {
      const ip: IP = { family: from.family, value };
      if (unusable(r, ip) !== null || taken.has(formatIP(ip))) continue;
      if (store.reserve(ip, containerId, ifname, setIndex)) return allocation(ip, r);
    }
  }
  return fail(`no IP addresses available in range set: ${rangeSetString(set)}`);
}
