// The weft plugin's config, and the bridge config it delegates to. The agent owns the
// node's subnet (subnet.json in the state dir); this plugin turns it into a bridge +
// host-local config with the overlay's MTU and a route to the whole cluster.
import { CniError, ErrorCode, messageOf } from "../../shared/cni/errors";
import { compileValidator } from "../../shared/cni/validate";
import { isErrno } from "../../shared/errno";
import { joinPath as join, readText } from "../../shared/fs";
import { parseCIDR } from "../../shared/ip";
import { weftSchema } from "./schema";

export interface WeftConf {
  cniVersion: string;
  name: string;
  stateDir: string;
  dataDir: string;
  bridge: string;
}

/** What the agent writes once the node's overlay is ready. */
export interface Subnet {
  podCIDR: string;
  clusterCIDR: string;
  mtu: number;
}

const validate = compileValidator<{ stateDir?: string; dataDir?: string; bridge?: string }>(weftSchema, "weft");

export const DEFAULT_STATE_DIR = "/run/weft";

export function parseWeftConf(raw: Record<string, unknown>): WeftConf {
  const c = validate(raw);
  const stateDir = c.stateDir ?? DEFAULT_STATE_DIR;
  return {
    cniVersion: String(raw["cniVersion"]),
    name: String(raw["name"]),
    stateDir,
    dataDir: c.dataDir ?? join(stateDir, "ipam"),
    bridge: c.bridge ?? "weft0",
  };
}

export function subnetPath(conf: Pick<WeftConf, "stateDir">): string {
  return join(conf.stateDir, "subnet.json");
}

/** The agent is not ready: subnet.json is missing or cannot be used (code 50). */
export function notReady(conf: WeftConf, why = "missing", details = ""): CniError {
  return new CniError(ErrorCode.NotReady, `weft agent not ready: ${subnetPath(conf)} ${why}`, details);
}

const isIPv4CIDR = (s: unknown): s is string => typeof s === "string" && parseCIDR(s)?.ip.family === 4;

/**
 * Reads subnet.json; null while the agent has not written it. One that cannot be read or
 * used is the agent not being ready either (code 50, the reason in the details).
 */
export function readSubnet(conf: WeftConf): Subnet | null {
  let text: string;
  try {
    text = readText(subnetPath(conf));
  } catch (e) {
    if (isErrno(e, "ENOENT")) return null;
    throw notReady(conf, "unreadable", messageOf(e));
  }
  let s: Partial<Subnet> | null = null;
  try {
    s = JSON.parse(text) as Partial<Subnet>;
  } catch {
    // reported below
  }
  // 68: the least MTU IPv4 allows (a 0 would make bridge fall back to 1500, above the overlay's).
  if (s && isIPv4CIDR(s.podCIDR) && isIPv4CIDR(s.clusterCIDR) && Number.isInteger(s.mtu) && s.mtu! >= 68) {
    return { podCIDR: s.podCIDR, clusterCIDR: s.clusterCIDR, mtu: s.mtu! };
  }
  throw notReady(conf, "unreadable", "not a valid subnet file: want IPv4 podCIDR and clusterCIDR, and an mtu of at least 68");
}

/**
 * The bridge + host-local config for this node: gateway bridge, default route via it,
 * the cluster CIDR routed via it too (so pod-to-pod leaves through the overlay), and no
 * masquerade here — the agent masquerades traffic leaving the cluster.
 */
export function delegateConf(conf: WeftConf, subnet: Subnet, raw: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {
    cniVersion: conf.cniVersion,
    name: conf.name,
    type: "bridge",
    bridge: conf.bridge,
    isGateway: true,
    isDefaultGateway: true,
    // The bridge is the node's own: when the node gets another pod CIDR, the new gateway
    // replaces the old one (flannel's cni0 keeps it, and every ADD fails until someone
    // deletes the bridge).
    forceAddress: true,
    ipMasq: false,
    hairpinMode: true,
    mtu: subnet.mtu,
    ipam: {
      type: "host-local",
      dataDir: conf.dataDir,
      ranges: [[{ subnet: subnet.podCIDR }]],
      routes: [{ dst: subnet.clusterCIDR }],
    },
  };
  // Runtime-supplied fields (MAC, requested IPs) pass through to bridge and host-local.
  for (const key of ["runtimeConfig", "args"]) if (raw[key] !== undefined) out[key] = raw[key];
  return out;
}
