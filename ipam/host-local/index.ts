// host-local IPAM as a library: the bridge and weft plugins call it in-process, and the
// host-local plugin's main wraps it. Every operation holds the network's flock throughout.
import { rollBack } from "../../shared/attempt";
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { DNS, IPConfig, Route } from "../../shared/cni/result";
import { formatIP, type IP } from "../../shared/ip";
import { allocateFrom, rangeSetContains } from "./allocator";
import type { HostLocalConfig } from "./config";
import { requestedIPs } from "./requested";
import { parseResolvConf } from "./resolv";
import { ownedBy, Store, type Reservation } from "./store";

export { parseHostLocalConfig, DEFAULT_DATA_DIR, type HostLocalConfig, type Range, type RangeSet } from "./config";

export interface IpamRequest {
  networkName: string;
  containerId: string;
  ifname: string;
  /** Already validated by parseHostLocalConfig, with the runtime's ipRanges. */
  ipam: HostLocalConfig;
  /** CNI_ARGS; "IP" requests specific addresses. */
  args: Map<string, string>;
  /** The whole runtimeConfig: its `ips` capability is read. */
  runtimeConfig?: unknown;
  /** The network config's args.cni.ips. */
  argsCniIps?: string[];
}

export type IpamTarget = Omit<IpamRequest, "args" | "runtimeConfig" | "argsCniIps">;

export interface IpamResult {
  ips: IPConfig[];
  routes: Route[];
  dns?: DNS;
}

function prefixed(e: unknown, prefix: string): unknown {
  return e instanceof CniError ? new CniError(e.code, `${prefix}${e.message}`, e.details) : e;
}

/**
 * Reserves one address per range set (a requested one where a request falls in the set).
 * All or nothing: on any failure the addresses reserved by this call are released.
 */
export function allocate(req: IpamRequest): IpamResult {
  const { ipam } = req;
  const pending = requestedIPs(req.args, req.argsCniIps, req.runtimeConfig);
  const dns = ipam.resolvConf === undefined ? undefined : parseResolvConf(ipam.resolvConf);
  const ips = Store.withLock(ipam.dataDir, req.networkName, (store) => {
    const reserved: IP[] = [];
    try {
      const configs = ipam.ranges.map((set, idx) => {
        // A loop, not findIndex(): no other ADD step uses that built-in (cold, ~0.1 ms).
        let i = 0;
        while (i < pending.length && !rangeSetContains(set, pending[i]!)) i++;
        const requested = i < pending.length ? pending.splice(i, 1)[0]! : null;
        try {
          const got = allocateFrom(store, set, idx, req.containerId, req.ifname, requested);
          reserved.push(got.ip);
          return got.config;
        } catch (e) {
          throw prefixed(e, `failed to allocate for range ${idx}: `);
        }
      });
      if (pending.length > 0) {
        throw new CniError(ErrorCode.Internal, `failed to allocate all requested IPs: ${pending.map(formatIP).join(" ")}`);
      }
      return configs;
    } catch (e) {
      // Every address this call reserved goes, even when one cannot; and the error says so.
      rollBack(e, reserved.map((ip) => () => store.remove(formatIP(ip))));
    }
  });
  return dns === undefined ? { ips, routes: [...ipam.routes] } : { ips, routes: [...ipam.routes], dns };
}

/**
 * Releases the addresses held by (containerId, ifname), in the Go plugin's two-line files,
 * or else in its old ID-only ones. Needs only the store, so it works after the netns is
 * gone; idempotent. Returns the released addresses.
 */
export function release(req: IpamTarget): string[] {
  const released = Store.withExistingLock(req.ipam.dataDir, req.networkName, (store) => {
    // As the reference: the files naming the interface, or else the container's files of
    // the old ID-only format (which may be another interface's, so only where none names this one).
    const named: Reservation[] = [];
    const idOnly: Reservation[] = [];
    for (const r of store.reservations()) {
      if (r.containerId !== req.containerId) continue;
      if (r.ifname === req.ifname) named.push(r);
      else if (r.ifname === null) idOnly.push(r);
    }
    const released: string[] = [];
    for (const r of named.length ? named : idOnly) {
      store.remove(r.file);
      released.push(formatIP(r.ip));
    }
    return released;
  });
  return released ?? [];
}

/** CHECK: throws unless (containerId, ifname) holds at least one address. */
export function check(req: IpamTarget): void {
  const found = Store.withExistingLock(req.ipam.dataDir, req.networkName, (store) =>
    store.reservations().some((r) => ownedBy(r, req.containerId, req.ifname)),
  );
  if (found !== true) {
    throw new CniError(
      ErrorCode.Internal,
      `host-local: failed to find address added by container ${req.containerId} (interface ${req.ifname})`,
    );
  }
}

/** GC: releases every reservation held by none of `validAttachments`; returns the addresses. */
export function gc(
  ipam: HostLocalConfig,
  networkName: string,
  validAttachments: ReadonlyArray<{ containerID: string; ifname: string }>,
): string[] {
  const released = Store.withExistingLock(ipam.dataDir, networkName, (store) => {
    // Empty or torn files (a crash mid-reserve) match no attachment and are reclaimed too.
    const stale = store.reservations().filter((r) => !validAttachments.some((a) => ownedBy(r, a.containerID, a.ifname)));
    for (const r of stale) store.remove(r.file);
    return stale.map((r) => formatIP(r.ip));
  });
  return released ?? [];
}
