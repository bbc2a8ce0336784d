// `weft agent`: flags, the node source, signals. The work is in agent.ts.
import { writeSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { parseFlags } from "../cli/flags";
import { DEFAULT_STATE_DIR } from "../plugins/weft/config";
import { formatCIDR } from "../shared/ip";
import { normaliseCIDR, type DirectRouting } from "./desired";
import { Agent, type AgentOptions } from "./agent";
import { FileNodeSource } from "./file-source";
import type { NodeSource } from "./types";

export const AGENT_USAGE = `usage: weft agent [flags]

Keeps this node's VXLAN overlay converged to the cluster's node list.

  --nodes kubernetes|FILE   node source (default kubernetes): Node objects from the API
                            server, or a JSON file {"clusterCIDR", "nodes": [{name, ip, podCIDR}]}
  --kubeconfig PATH         kubeconfig for --nodes kubernetes (default: in-cluster)
  --cluster-cidr CIDR       cluster pod CIDR for --nodes kubernetes (default 10.244.0.0/16)
  --node-name NAME          this node (default $NODE_NAME, then the hostname)
  --iface NAME              underlay interface (default: the one holding the node address)
  --vni N                   VXLAN network identifier (default 1); device weft.<vni>
  --port N                  VXLAN UDP port (default 4789)
  --mtu N                   overlay MTU (default: underlay MTU - 50)
  --direct-routing never|auto
                            auto: peers on the same L2 subnet get a plain route, no
                            encapsulation (default never)
  --fast-path auto|never    auto: TCP and UDP between pods skip the bridge and the
                            node's forwarding (eBPF, where the kernel allows; default auto)
  --state-dir DIR           where subnet.json goes (default /run/weft)
  --ipam-dir DIR            IPAM data dir written into the conflist (default <state-dir>/ipam)
  --cni-conf-dir DIR        where 10-weft.conflist goes (default /etc/cni/net.d)
  --masquerade[=true|false] masquerade pod traffic leaving the cluster CIDR (default true)
  --resync SECONDS          full reconcile period (default 30)
  --ready-file PATH         a file that exists while the node is ready (for a readiness probe)
`;

export interface AgentConfig {
  options: AgentOptions;
  /** "kubernetes" or a file path */
  nodes: string;
  kubeconfig?: string;
  clusterCIDR: string;
}

const BOOLEAN_FLAGS = new Set(["masquerade"]);
const VALUE_FLAGS = new Set([
  "nodes",
  "ready-file",
  "kubeconfig",
  "cluster-cidr",
  "node-name",
  "iface",
  "vni",
  "port",
  "mtu",
  "direct-routing",
  "fast-path",
  "state-dir",
  "ipam-dir",
  "cni-conf-dir",
  "resync",
]);

function intValue(name: string, v: string, min: number, max: number): number {
  if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max) throw new Error(`--${name}: expected an integer ${min}-${max}, not "${v}"`);
  return Number(v);
}

/** Parses `weft agent` arguments. Throws with a message naming the bad flag. */
export function parseAgentArgs(argv: string[], env: Record<string, string | undefined> = process.env, host: () => string = hostname): AgentConfig {
  const { values, bools } = parseFlags(argv, { values: VALUE_FLAGS, bools: BOOLEAN_FLAGS });

  const nodeName = values.get("node-name") || env["NODE_NAME"] || host();
  if (!nodeName) throw new Error("--node-name is required (no $NODE_NAME, no hostname)");
  const directRouting = values.get("direct-routing") ?? "never";
  if (directRouting !== "never" && directRouting !== "auto") throw new Error(`--direct-routing: expected never or auto, not "${directRouting}"`);
  const fastPath = values.get("fast-path") ?? "auto";
  if (fastPath !== "auto" && fastPath !== "never") throw new Error(`--fast-path: expected auto or never, not "${fastPath}"`);
  const clusterCIDR = values.get("cluster-cidr") ?? "10.244.0.0/16";
  const cluster = normaliseCIDR(clusterCIDR);
  if (!cluster) throw new Error(`--cluster-cidr: "${clusterCIDR}" is not an IPv4 CIDR`);
  const stateDir = values.get("state-dir") ?? DEFAULT_STATE_DIR;
  const mtu = values.get("mtu");
  const iface = values.get("iface");
  const kubeconfig = values.get("kubeconfig");
  const readyFile = values.get("ready-file");

  const options: AgentOptions = {
    nodeName,
    vni: intValue("vni", values.get("vni") ?? "1", 0, 0xffffff),
    port: intValue("port", values.get("port") ?? "4789", 1, 65535),
    directRouting: directRouting as DirectRouting,
    fastPath,
    stateDir,
    ipamDir: values.get("ipam-dir") ?? join(stateDir, "ipam"),
    cniConfDir: values.get("cni-conf-dir") ?? "/etc/cni/net.d",
    masquerade: bools.get("masquerade") ?? true,
    resyncSeconds: intValue("resync", values.get("resync") ?? "30", 1, 86400),
    ...(iface ? { iface } : {}),
    ...(mtu ? { mtu: intValue("mtu", mtu, 68, 65535) } : {}),
    ...(readyFile ? { readyFile } : {}),
  };
  return {
    options,
    nodes: values.get("nodes") ?? "kubernetes",
    clusterCIDR: formatCIDR(cluster.ip, cluster.prefix),
    ...(kubeconfig ? { kubeconfig } : {}),
  };
}

/** Builds the node source the config names. The Kubernetes client loads only when asked for. */
export async function makeSource(c: AgentConfig): Promise<NodeSource> {
  if (c.nodes !== "kubernetes") return new FileNodeSource(c.nodes);
  const { KubeNodeSource } = await import("./kube-source");
  return new KubeNodeSource({ clusterCIDR: c.clusterCIDR, ...(c.kubeconfig ? { kubeconfig: c.kubeconfig } : {}) });
}

/** `weft agent …`: runs until SIGTERM/SIGINT, then exits 0 leaving the dataplane in place. */
export async function runAgent(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    writeSync(1, AGENT_USAGE);
    return 0;
  }
  let config: AgentConfig;
  try {
    config = parseAgentArgs(argv);
  } catch (e) {
    writeSync(2, `weft agent: ${(e as Error).message}\n\n${AGENT_USAGE}`);
    return 2;
  }
  // The Kubernetes client's HTTP stack calls url.parse(), which Bun flags as deprecated on
  // every request; that is not ours to fix and not worth a log line each time.
  process.noDeprecation = true;
  const source = await makeSource(config);
  const agent = new Agent(config.options, source);
  const o = config.options;
  writeSync(
    2,
    `weft agent: node ${o.nodeName}, nodes from ${config.nodes}, device weft.${o.vni} (port ${o.port}), direct routing ${o.directRouting}, fast path ${o.fastPath}, masquerade ${o.masquerade ? "on" : "off"}, resync ${o.resyncSeconds}s\n`,
  );
  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      agent.stop();
      writeSync(2, `weft agent: ${signal}: stopping, dataplane left in place\n`);
      resolve(0);
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
    agent.start();
  });
}
