// Convergence plans: given what the kernel holds (only entries that are ours) and what is
// wanted, the operations that turn one into the other. Pure, so the add / replace / delete
// decisions are unit-tested without a kernel; dataplane.ts carries them out.
import type { FdbRemote } from "../shared/netlink/neighbor";

/** A route as the plan sees it: the output device by ifindex. */
export interface RouteState {
  /** RTN_* where not unicast (a blackhole, say): never what is wanted */
  type?: number;
  /** one next hop of a multipath route: never what is wanted either, even the right hop */
  multipath?: true;
  dst: string;
  gw?: string;
  index?: number;
  onlink: boolean;
  priority?: number;
}

export interface NeighborState {
  ip: string;
  mac?: string;
  /** NUD_* bitmask */
  state: number;
}

export interface FdbState extends FdbRemote {
  mac: string;
}

export type Op<T> = { op: "add"; want: T } | { op: "replace"; want: T; have: T } | { op: "delete"; have: T };

const NUD_PERMANENT = 0x80;
const NUD_NOARP = 0x40;

function sameRoute(a: RouteState, b: RouteState): boolean {
  return !a.multipath && !b.multipath && a.type === b.type && a.gw === b.gw && a.index === b.index && a.onlink === b.onlink && (a.priority ?? 0) === (b.priority ?? 0);
}

/**
 * Routes: `have` are routes carrying the agent's protocol number, `want` one per
 * destination. A destination with several of our routes (different metrics) keeps the
 * first that matches, or gets the first replaced, and loses the rest.
 */
export function planRoutes(have: RouteState[], want: RouteState[]): Op<RouteState>[] {
  const byDst = new Map<string, RouteState[]>();
  for (const r of have) byDst.set(r.dst, [...(byDst.get(r.dst) ?? []), r]);
  const ops: Op<RouteState>[] = [];
  const deletes: Op<RouteState>[] = [];
  for (const w of want) {
    const existing = byDst.get(w.dst) ?? [];
    byDst.delete(w.dst);
    const keep = existing.find((r) => sameRoute(r, w));
    if (keep) {
      for (const r of existing) if (r !== keep) deletes.push({ op: "delete", have: r });
      continue;
    }
    // Replace acts on the route with the same destination and metric: ours at metric 0.
    const target = existing.find((r) => (r.priority ?? 0) === (w.priority ?? 0));
    if (target) ops.push({ op: "replace", want: w, have: target });
    else ops.push({ op: "add", want: w });
    for (const r of existing) if (r !== target) deletes.push({ op: "delete", have: r });
  }
  for (const rest of byDst.values()) for (const r of rest) deletes.push({ op: "delete", have: r });
  // Deletions first: a departed node's route goes before anything new could clash with it.
  return [...deletes, ...ops];
}

/**
 * Neighbors on the overlay device: every wanted one permanent with the right MAC; any other
 * entry there is deleted, except NOARP ones (the kernel's own, e.g. broadcast), which
 * cannot hurt.
 */
export function planNeighbors(have: NeighborState[], want: Array<{ ip: string; mac: string }>): Op<NeighborState>[] {
  const byIP = new Map(have.map((n) => [n.ip, n]));
  const ops: Op<NeighborState>[] = [];
  const deletes: Op<NeighborState>[] = [];
  for (const w of want) {
    const n = byIP.get(w.ip);
    byIP.delete(w.ip);
    const wanted: NeighborState = { ip: w.ip, mac: w.mac, state: NUD_PERMANENT };
    if (!n) ops.push({ op: "add", want: wanted });
    else if (n.mac !== w.mac || !(n.state & NUD_PERMANENT)) ops.push({ op: "replace", want: wanted, have: n });
  }
  for (const n of byIP.values()) if (!(n.state & NUD_NOARP)) deletes.push({ op: "delete", have: n });
  return [...deletes, ...ops];
}

/**
 * FDB entries on the overlay device: exactly one remote per wanted MAC, on the device's own
 * port and VNI. A MAC with the wrong remote (or one with a port, VNI or interface of its
 * own) is replaced; extra remotes of a MAC (`bridge fdb append`) and unwanted MACs are
 * deleted.
 */
export function planFdb(have: FdbState[], want: Array<{ mac: string; dst: string }>): Op<FdbState>[] {
  const byMac = new Map<string, FdbState[]>();
  for (const e of have) byMac.set(e.mac, [...(byMac.get(e.mac) ?? []), e]);
  const ops: Op<FdbState>[] = [];
  const deletes: Op<FdbState>[] = [];
  for (const w of want) {
    const existing = byMac.get(w.mac) ?? [];
    byMac.delete(w.mac);
    const exact = existing.find((e) => e.dst === w.dst && e.port === undefined && e.vni === undefined && e.via === undefined);
    if (exact) {
      for (const e of existing) if (e !== exact) deletes.push({ op: "delete", have: e });
      continue;
    }
    if (existing.length === 0) {
      ops.push({ op: "add", want: w });
      continue;
    }
    // Replace rewrites the entry's first (default) remote; any further ones go.
    ops.push({ op: "replace", want: w, have: existing[0]! });
    for (const e of existing.slice(1)) deletes.push({ op: "delete", have: e });
  }
  // A MAC nobody wants goes whole, all its remotes at once (one naming an interface since
  // deleted could not be deleted by itself).
  for (const [mac] of byMac) deletes.push({ op: "delete", have: { mac } });
  return [...deletes, ...ops];
}
