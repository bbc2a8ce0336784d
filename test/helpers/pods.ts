// A test "node": a host netns holding the bridge and rules, pod netns attached by the
// compiled plugin, and a per-test IPAM data dir. Everything is removed in teardown.
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cni, cniAsync, requireBuild, type CniCall, type CniReply } from "./cni";
import { afterEach, beforeEach, expect } from "vitest";
import { cleanupAll, createNetns, leftovers, linkNames, netnsPath, uniqueName } from "./netns";
import { addressOf } from "../../shared/ip";

export interface Node {
  host: string;
  dataDir: string;
  bridge: string;
}

function createNode(): Node {
  requireBuild();
  const host = createNetns("host");
  return { host, dataDir: mkdtempSync(join(tmpdir(), "weft-it-")), bridge: uniqueName("br") };
}

/** A fresh node per test, removed after it; the run must leave no namespace behind. */
export function useNode(set: (node: Node) => void): void {
  let current: Node | undefined;
  beforeEach(() => {
    current = createNode();
    set(current);
  });
  afterEach(() => {
    destroyNode(current);
    expect(leftovers()).toEqual([]);
  });
}

function destroyNode(node: Node | undefined): void {
  cleanupAll();
  if (node) rmSync(node.dataDir, { recursive: true, force: true });
}

export const NET = "weft-it";

export function bridgeConf(node: Node, extra: Record<string, unknown> = {}, ipam: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: NET,
    type: "bridge",
    bridge: node.bridge,
    isGateway: true,
    ...extra,
    ipam: {
      type: "host-local",
      dataDir: node.dataDir,
      ranges: [[{ subnet: "10.77.0.0/24" }], [{ subnet: "fd77::/64" }]],
      ...ipam,
    },
  };
}

export interface Pod {
  ns: string;
  path: string;
  id: string;
  reply: CniReply;
}

export function call(node: Node, c: Omit<CniCall, "hostNs">): CniReply {
  return cni({ hostNs: node.host, ...c });
}

/** The same, without blocking. */
export function callAsync(node: Node, c: Omit<CniCall, "hostNs">): Promise<CniReply> {
  return cniAsync({ hostNs: node.host, ...c });
}

/** How a call runs the plugin: which executable (binDir), CNI_PATH (path) and extra environment. */
export type Runner = Pick<CniCall, "binDir" | "env" | "path">;

/** Runs ADD for a pod netns: `ns` when given (a test prepared it), else a new one. */
export function addPod(node: Node, conf: Record<string, unknown>, o: { ns?: string; args?: string; ifname?: string; plugin?: string } & Runner = {}): Pod {
  const { ns: given, plugin = "bridge", ifname = "eth0", ...rest } = o;
  const ns = given ?? createNetns("pod");
  const id = `ctr-${ns}`;
  const reply = call(node, { plugin, command: "ADD", conf, containerId: id, netns: netnsPath(ns), ifname, ...rest });
  return { ns, path: netnsPath(ns), id, reply };
}

export function delPod(node: Node, pod: Pod, conf: Record<string, unknown>, ifname = "eth0", runner: Runner = {}): CniReply {
  return call(node, { plugin: "bridge", command: "DEL", conf, containerId: pod.id, netns: pod.path, ifname, ...runner });
}

/** Reservation files in the network's host-local dir (IPs only, not lock/last_reserved). */
export function reservations(node: Node, net = NET): string[] {
  try {
    return readdirSync(join(node.dataDir, net)).filter((f) => f !== "lock" && !f.startsWith("last_reserved_ip"));
  } catch {
    return [];
  }
}

/** The pod's first address of a family from an ADD result. */
export function podIP(pod: Pod, family: 4 | 6): string {
  const ips = (pod.reply.json?.["ips"] ?? []) as Array<{ address: string }>;
  const ip = ips.map((i) => addressOf(i.address)).find((a) => (family === 6) === a.includes(":"));
  if (!ip) throw new Error(`pod has no IPv${family} address: ${pod.reply.stdout}`);
  return ip;
}

/** The veths in netns `ns`: what pods left on a node's host side. */
export function vethsIn(ns: string): string[] {
  return linkNames(ns).filter((n) => n.startsWith("veth"));
}
