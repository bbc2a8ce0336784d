// The IPAM step of an interface plugin: host-local runs in-process (no second process
// per pod); any other IPAM type is executed from CNI_PATH by the standard protocol.
import type { CniEnv } from "../shared/cni/env";
import { execPlugin } from "../shared/cni/exec";
import { foldKeys } from "../shared/cni/fold-keys";
import { getRuntimeConfigKey } from "../shared/cni/runtime-config";
import type { Result } from "../shared/cni/result";
import type { PluginContext } from "../shared/cni/skeleton";
import * as hostLocal from "./host-local/index";

export interface IpamCall {
  env: CniEnv;
  /** the whole network config the plugin was given (delegated plugins get all of it) */
  raw: Record<string, unknown>;
  networkName: string;
  cniVersion: string;
  /** host-local's config when the caller already validated it (bridge does, at parse time) */
  hostLocal?: hostLocal.HostLocalConfig;
}

/** The IPAM step's inputs for a plugin call; `conf.hostLocal` when the caller already validated it. */
export function ipamCallOf(ctx: Pick<PluginContext<{ name: string; cniVersion: string; hostLocal?: hostLocal.HostLocalConfig }>, "conf" | "env" | "raw">): IpamCall {
  const { name, cniVersion, hostLocal } = ctx.conf;
  return { env: ctx.env, raw: ctx.raw, networkName: name, cniVersion, ...(hostLocal ? { hostLocal } : {}) };
}

function ipamType(raw: Record<string, unknown>): string {
  const ipam = raw["ipam"] as { type?: unknown } | undefined;
  return typeof ipam?.type === "string" ? ipam.type : "";
}

function hostLocalConfig(c: IpamCall): hostLocal.HostLocalConfig {
  return c.hostLocal ?? hostLocal.parseHostLocalConfig(c.raw["ipam"], c.networkName, getRuntimeConfigKey(c.raw["runtimeConfig"], "ipRanges"));
}

function hostLocalRequest(c: IpamCall) {
  return { networkName: c.networkName, containerId: c.env.containerId, ifname: c.env.ifname, ipam: hostLocalConfig(c) };
}

// args.cni.ips, read as the reference's Go decoder reads it: "CNI": {"IPs": …} too.
const ARGS_CNI_IPS = { properties: { cni: { properties: { ips: {} } } } };

function argsCniIps(raw: Record<string, unknown>): string[] | undefined {
  foldKeys(raw["args"], ARGS_CNI_IPS);
  const ips = (raw["args"] as { cni?: { ips?: unknown } } | undefined)?.cni?.ips;
  return Array.isArray(ips) ? ips.map(String) : undefined;
}

export function ipamAdd(c: IpamCall): Result {
  const type = ipamType(c.raw);
  if (type !== "host-local") {
    const r = execPlugin(type, "ADD", c.raw, c.env);
    if (!r) throw new Error(`IPAM plugin ${type} returned no result`);
    return r;
  }
  const cniIps = argsCniIps(c.raw);
  const out = hostLocal.allocate({
    ...hostLocalRequest(c),
    args: c.env.args,
    runtimeConfig: c.raw["runtimeConfig"],
    ...(cniIps ? { argsCniIps: cniIps } : {}),
  });
  return { cniVersion: c.cniVersion, ...out };
}

/** Releases the container's addresses. */
export function ipamDel(c: IpamCall): void {
  const type = ipamType(c.raw);
  if (type !== "host-local") {
    execPlugin(type, "DEL", c.raw, c.env);
    return;
  }
  hostLocal.release(hostLocalRequest(c));
}

export function ipamCheck(c: IpamCall): void {
  const type = ipamType(c.raw);
  if (type !== "host-local") {
    execPlugin(type, "CHECK", c.raw, c.env);
    return;
  }
  hostLocal.check(hostLocalRequest(c));
}

/** GC: host-local releases what `valid` does not name; another type gets the GC call itself. */
export function ipamGc(c: IpamCall, valid: ReadonlyArray<{ containerID: string; ifname: string }>): void {
  const type = ipamType(c.raw);
  if (type !== "host-local") {
    execPlugin(type, "GC", c.raw, c.env);
    return;
  }
  hostLocal.gc(hostLocalConfig(c), c.networkName, valid);
}

/**
 * STATUS of a delegated IPAM plugin, as the spec requires of a plugin that relies on one
 * (its "not ready" is ours); callers skip host-local, which has nothing that can be unready.
 */
export function ipamStatus(c: IpamCall): void {
  execPlugin(ipamType(c.raw), "STATUS", c.raw, c.env);
}
