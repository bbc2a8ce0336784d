// `weft agent`, compiled, on a real kernel: an underlay "switch" namespace with a bridge and
// three node namespaces wired to it, an agent in each node reading one nodes file. What
// the agents program is read back with `ip -j` and `bridge -j`, as an operator would.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it, type TestContext } from "vitest";
import { writeFileAtomic } from "../../shared/atomic-file";
import { addressOf } from "../../shared/ip";
import { BIN_DIR, cni, requireBuild } from "../helpers/cni";
import { holdLock } from "../helpers/file-lock";
import { cleanupToolPaths, noNftPath, slowPath } from "../helpers/tool-paths";
import { inNetns } from "../../shared/netns";
import { BPF_TCX_INGRESS, tcxQuery } from "../../shared/bpf/syscall";
import { cleanupAll, createNetns, deleteNetns, ipJson, leftovers, mtuOf, netnsPath, inNs, nsTry, ping } from "../helpers/netns";

interface TestNode {
  name: string;
  ns: string;
  ip: string;
  podCIDR: string;
  stateDir: string;
  confDir: string;
}

interface Agent {
  node: TestNode;
  child: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
}

const CLUSTER = "10.244.0.0/16";
const mac = (ip: string) => `0e:fe:${ip.split(".").map((b) => Number(b).toString(16).padStart(2, "0")).join(":")}`;

let dir: string;
let nodesFile: string;
let sw: string;
let nodes: TestNode[];
let agents: Agent[];
let children: ChildProcess[];

/** A node namespace on the switch: eth0 with `ip`/24 (and, optionally, routes to other subnets). */
function addNode(i: number, ip: string, o: { onLinkRoutes?: string[] } = {}): TestNode {
  const ns = createNetns(`n${i}`);
  const port = `p${i}`;
  inNs(sw, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
  inNs(sw, "ip", "link", "set", port, "master", "br0", "up");
  inNs(ns, "ip", "link", "set", "lo", "up");
  inNs(ns, "ip", "addr", "add", `${ip}/24`, "dev", "eth0");
  inNs(ns, "ip", "link", "set", "eth0", "up");
  // A new netns copies the host's ip_forward: start every node with it off, so that what
  // the tests see on is the agent's doing, whatever the host's value.
  inNs(ns, "sysctl", "-qw", "net.ipv4.ip_forward=0");
  for (const r of o.onLinkRoutes ?? []) inNs(ns, "ip", "route", "add", r, "dev", "eth0");
  const node = {
    name: `n${i}`,
    ns,
    ip,
    podCIDR: `10.244.${i}.0/24`,
    stateDir: join(dir, `n${i}`, "state"),
    confDir: join(dir, `n${i}`, "net.d"),
  };
  nodes.push(node);
  return node;
}

function writeNodes(list: TestNode[]): void {
  // Atomic: the agents never see a half-written file.
  writeFileAtomic(nodesFile, JSON.stringify({ clusterCIDR: CLUSTER, nodes: list.map((n) => ({ name: n.name, ip: n.ip, podCIDR: n.podCIDR })) }));
}

function startAgent(node: TestNode, extra: string[] = [], source: string[] = ["--nodes", nodesFile], env: NodeJS.ProcessEnv = process.env): Agent {
  const child = spawn(
    "ip",
    [
      "netns",
      "exec",
      node.ns,
      join(BIN_DIR, "weft"),
      "agent",
      ...source,
      "--node-name",
      node.name,
      "--state-dir",
      node.stateDir,
      "--cni-conf-dir",
      node.confDir,
      "--resync",
      "2",
      ...extra,
    ],
    { stdio: ["ignore", "ignore", "pipe"], env },
  );
  let text = "";
  child.stderr!.on("data", (d: Buffer) => (text += d.toString()));
  // "close", not "exit": by then every line the agent wrote to stderr has arrived.
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  const a = { node, child, log: () => text, exited };
  agents.push(a);
  return a;
}

async function stopAgent(a: Agent): Promise<number | null> {
  if (a.child.exitCode !== null || a.child.signalCode !== null) return a.child.exitCode;
  a.child.kill("SIGTERM");
  const t = setTimeout(() => a.child.kill("SIGKILL"), 15_000);
  const code = await a.exited;
  clearTimeout(t);
  return code;
}

/**
 * How long a repair that only a kernel notification can bring may take, in the tests whose
 * agents resync every 300 s or more: far below the resync, with room for a loaded machine.
 */
const AT_ONCE = 15_000;

async function until<T>(what: string, get: () => T, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  let v = get();
  while (!ok(v)) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}\nagent logs:\n${agents.map((a) => `[${a.node.name}]\n${a.log()}`).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
    v = get();
  }
  return v;
}

interface Overlay {
  device: { mac: string; mtu: number; up: boolean; vni: number; local: string; link: string; port: number; learning: boolean } | null;
  addrs: string[];
  routes: string[];
  neigh: string[];
  fdb: string[];
}

/** The weft plugin's config as the node's conflist gives it, once the agent wrote it. */
async function weftConf(n: TestNode): Promise<Record<string, unknown>> {
  const conflist = join(n.confDir, "10-weft.conflist");
  await until("conflist", () => existsSync(conflist), (v) => v);
  const list = JSON.parse(readFileSync(conflist, "utf8")) as { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> };
  return { cniVersion: list.cniVersion, name: list.name, ...list.plugins[0] };
}

/** A pod the weft plugin made on node `n` (its ADD must succeed): its netns and IPv4 address. */
function weftPod(n: TestNode, conf: Record<string, unknown>, containerId: string, args?: string, env?: Record<string, string>): { ns: string; ip: string } {
  const ns = createNetns("wp");
  const r = cni({ plugin: "weft", command: "ADD", conf, hostNs: n.ns, containerId, netns: netnsPath(ns), ...(args ? { args } : {}), ...(env ? { env } : {}) });
  expect(r.code, r.stdout).toBe(0);
  return { ns, ip: addressOf(r.json!["ips"][0].address as string) };
}

/**
 * What a node's kernel holds for the overlay, as sorted one-line strings. The agent may
 * delete and recreate the device while we read; a read that loses it counts as "no device".
 */
function overlay(ns: string, dev = "weft.1"): Overlay {
  try {
    return readOverlay(ns, dev);
  } catch {
    return { device: null, addrs: [], routes: [], neigh: [], fdb: [] };
  }
}

function readOverlay(ns: string, dev: string): Overlay {
  type L = { address: string; mtu: number; flags: string[]; linkinfo: { info_data: Record<string, unknown> } };
  const link = nsTry(ns, "ip", "-j", "-d", "link", "show", dev);
  if (!link.ok) return { device: null, addrs: [], routes: routesOf(ns), neigh: [], fdb: [] };
  const l = (JSON.parse(link.out) as L[])[0]!;
  const d = l.linkinfo.info_data;
  const addrs = ipJson<Array<{ addr_info: Array<{ family: string; local: string; prefixlen: number }> }>>(ns, "-4", "addr", "show", "dev", dev);
  return {
    device: {
      mac: l.address,
      mtu: l.mtu,
      up: l.flags.includes("UP"),
      vni: d["id"] as number,
      local: d["local"] as string,
      link: d["link"] as string,
      port: d["port"] as number,
      learning: d["learning"] as boolean,
    },
    addrs: addrs.flatMap((a) => a.addr_info.map((x) => `${x.local}/${x.prefixlen}`)),
    routes: routesOf(ns),
    neigh: ipJson<Array<{ dst: string; lladdr?: string; state: string[] }>>(ns, "-4", "neigh", "show", "dev", dev)
      .map((n) => `${n.dst} ${n.lladdr ?? "-"} ${n.state.join(",")}`)
      .sort(),
    fdb: (JSON.parse(inNs(ns, "bridge", "-j", "fdb", "show", "dev", dev) || "[]") as Array<{ mac: string; dst?: string; port?: number; flags: string[]; state: string }>)
      .map((f) => `${f.mac} dst ${f.dst ?? "-"}${f.port ? ` port ${f.port}` : ""} ${f.flags.join(",")} ${f.state}`)
      .sort(),
  };
}

/** Routes carrying weft's protocol number (87). */
function routesOf(ns: string): string[] {
  return ipJson<Array<{ dst: string; gateway?: string; dev: string; flags: string[] }>>(ns, "-4", "route", "show", "proto", "87")
    .map((r) => `${r.dst}${r.gateway ? ` via ${r.gateway}` : ""} dev ${r.dev}${r.flags.includes("onlink") ? " onlink" : ""}`)
    .sort();
}

/** The overlay entries node `self` should hold for `peers` (all through the tunnel). */
function expectedTunnel(peers: TestNode[], dev = "weft.1"): Pick<Overlay, "routes" | "neigh" | "fdb"> {
  const gw = (p: TestNode) => p.podCIDR.replace(/\/24$/, "");
  return {
    routes: peers.map((p) => `${p.podCIDR} via ${gw(p)} dev ${dev} onlink`).sort(),
    neigh: peers.map((p) => `${gw(p)} ${mac(p.ip)} PERMANENT`).sort(),
    fdb: peers.map((p) => `${mac(p.ip)} dst ${p.ip} self permanent`).sort(),
  };
}

const tunnelOf = (o: Overlay) => ({ routes: o.routes, neigh: o.neigh, fdb: o.fdb });

beforeEach(() => {
  requireBuild();
  dir = mkdtempSync(join(tmpdir(), "weft-agent-it-"));
  nodesFile = join(dir, "nodes.json");
  nodes = [];
  agents = [];
  children = [];
  sw = createNetns("sw");
  inNs(sw, "ip", "link", "add", "br0", "type", "bridge");
  inNs(sw, "ip", "link", "set", "br0", "up");
});

afterEach(async () => {
  await Promise.all(agents.map(stopAgent));
  for (const c of children) c.kill("SIGKILL");
  cleanupAll();
  rmSync(dir, { recursive: true, force: true });
  expect(leftovers()).toEqual([]);
});
afterAll(cleanupToolPaths);

describe("weft agent --nodes FILE", () => {
  it("programs the device, and per peer a neighbor, an FDB entry and a route; the tunnel carries traffic", async () => {
    const [n1, n2, n3] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12"), addNode(3, "192.168.77.13")];
    writeNodes([n1!, n2!, n3!]);
    for (const n of nodes) startAgent(n);

    for (const n of nodes) {
      const peers = nodes.filter((p) => p !== n);
      await until(`${n.name} converged`, () => tunnelOf(overlay(n.ns)), (v) => JSON.stringify(v) === JSON.stringify(expectedTunnel(peers)));
      const o = overlay(n.ns);
      expect(o.device).toEqual({ mac: mac(n.ip), mtu: 1450, up: true, vni: 1, local: n.ip, link: "eth0", port: 4789, learning: false });
      expect(o.addrs).toEqual([n.podCIDR.replace("/24", "/32")]);
      expect(inNs(n.ns, "cat", "/proc/sys/net/ipv4/ip_forward").trim()).toBe("1");
      const nat = inNs(n.ns, "nft", "list", "table", "ip", "weft-overlay");
      expect(nat).toContain(`ip saddr ${n.podCIDR} ip daddr ${CLUSTER} return`);
      expect(nat).toMatch(new RegExp(`ip saddr ${n.podCIDR.replace(/\./g, "\\.")} ip daddr != 224\\.0\\.0\\.0/4 masquerade`));
      await until(`${n.name} files`, () => existsSync(join(n.confDir, "10-weft.conflist")), (v) => v);
      expect(JSON.parse(readFileSync(join(n.stateDir, "subnet.json"), "utf8"))).toEqual({ podCIDR: n.podCIDR, clusterCIDR: CLUSTER, mtu: 1450 });
      expect(JSON.parse(readFileSync(join(n.confDir, "10-weft.conflist"), "utf8"))).toEqual({
        cniVersion: "1.0.0",
        cniVersions: ["1.0.0", "1.1.0"],
        name: "weft",
        plugins: [{ type: "weft", stateDir: n.stateDir, dataDir: join(n.stateDir, "ipam") }],
      });
    }
    // Node to remote pod-CIDR gateway, over VXLAN (the underlay has no route to 10.244/16).
    expect(ping(n1!.ns, "10.244.2.0")).toBe(true);
    expect(ping(n3!.ns, "10.244.1.0")).toBe(true);
    // One line per change: the first agent's log names what it did.
    const log = await until("the log", () => agents[0]!.log(), (l) => l.includes("10-weft.conflist"));
    expect(log).toContain("route add 10.244.2.0/24 via 10.244.2.0 dev weft.1 onlink");
    expect(log).toContain(`fdb add ${mac(n2!.ip)} dst ${n2!.ip} dev weft.1 self permanent`);
  });

  it("honours --vni, --port, --mtu, --iface and --ipam-dir: device weft.7 as asked, pods' addresses reserved in the IPAM dir", async () => {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    writeNodes([n1!, n2!]);
    const ipamDir = (n: TestNode) => join(dir, n.name, "pod-ips");
    for (const n of nodes) startAgent(n, ["--vni", "7", "--port", "8475", "--mtu", "1400", "--iface", "eth0", "--ipam-dir", ipamDir(n)]);

    for (const [n, peer] of [[n1!, n2!], [n2!, n1!]] as const) {
      await until(`${n.name} converged`, () => tunnelOf(overlay(n.ns, "weft.7")), (v) => JSON.stringify(v) === JSON.stringify(expectedTunnel([peer], "weft.7")));
      // What `ip -d link` shows: a default left in place of any flag (VNI 1, port 4789,
      // MTU 1450) fails here.
      expect(overlay(n.ns, "weft.7").device).toEqual({ mac: mac(n.ip), mtu: 1400, up: true, vni: 7, local: n.ip, link: "eth0", port: 8475, learning: false });
      // The VNI names the device; nothing made under the default name.
      expect(nsTry(n.ns, "ip", "link", "show", "weft.1").ok).toBe(false);
      await until(`${n.name} files`, () => existsSync(join(n.confDir, "10-weft.conflist")), (v) => v);
      expect(JSON.parse(readFileSync(join(n.stateDir, "subnet.json"), "utf8"))).toEqual({ podCIDR: n.podCIDR, clusterCIDR: CLUSTER, mtu: 1400 });
    }
    const [c1, c2] = [await weftConf(n1!), await weftConf(n2!)];
    expect(c1).toMatchObject({ stateDir: n1!.stateDir, dataDir: ipamDir(n1!) });
    expect(c2).toMatchObject({ stateDir: n2!.stateDir, dataDir: ipamDir(n2!) });

    // A runtime's ADD with that conflist: the reservation lands in --ipam-dir, none under the
    // state dir's default, and the pod gets the overlay's MTU from subnet.json.
    const [p1, p2] = [weftPod(n1!, c1, "flags-1"), weftPod(n2!, c2, "flags-2")];
    expect(existsSync(join(ipamDir(n1!), "weft", p1.ip))).toBe(true);
    expect(existsSync(join(n1!.stateDir, "ipam"))).toBe(false);
    expect(mtuOf(p1.ns, "eth0")).toBe(1400);
    // Both ends agree on VNI 7 and port 8475, so the tunnel carries pod traffic.
    expect(ping(p1.ns, p2.ip)).toBe(true);
  });

  it("--iface names the underlay: one without the node address is refused, and nothing is made", async () => {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    writeNodes([n1!, n2!]);
    inNs(n1!.ns, "ip", "link", "add", "eth1", "type", "bridge");
    const a = startAgent(n1!, ["--iface", "eth1"]);
    await until("the refusal", () => a.log(), (l) => l.includes("node address 192.168.77.11 is not on interface eth1"));
    expect(overlay(n1!.ns).device).toBeNull();
    expect(existsSync(join(n1!.stateDir, "subnet.json"))).toBe(false);
    expect(existsSync(join(n1!.confDir, "10-weft.conflist"))).toBe(false);
  });

  it("without --mtu, sizes the overlay from the uplink: eth0 at 9000 gives weft.1 and subnet.json 8950", async () => {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    // Jumbo frames on both ends of each node's wire, set before the agents start.
    for (const [i, n] of [n1!, n2!].entries()) {
      inNs(n.ns, "ip", "link", "set", "eth0", "mtu", "9000");
      inNs(sw, "ip", "link", "set", `p${i + 1}`, "mtu", "9000");
    }
    writeNodes([n1!, n2!]);
    for (const n of nodes) startAgent(n);
    const c = await Promise.all([weftConf(n1!), weftConf(n2!)]);
    // A fixed 1450 (or 1500 - 50 whatever the uplink) fails here.
    expect(overlay(n1!.ns).device).toMatchObject({ up: true, vni: 1, link: "eth0", mtu: 8950 });
    expect(JSON.parse(readFileSync(join(n1!.stateDir, "subnet.json"), "utf8"))).toEqual({ podCIDR: n1!.podCIDR, clusterCIDR: CLUSTER, mtu: 8950 });
    // And it is usable: a pod's full-size packet, DF set, crosses the tunnel whole.
    const [p1, p2] = [weftPod(n1!, c[0]!, "jumbo-1"), weftPod(n2!, c[1]!, "jumbo-2")];
    expect(mtuOf(p1.ns, "eth0")).toBe(8950);
    expect(nsTry(p1.ns, "ping", "-M", "do", "-s", String(8950 - 28), "-c", "1", "-W", "2", p2.ip).ok).toBe(true);
  });

  it("removes a departed node's entries on the others, and adds them back when it returns", async () => {
    const [n1, n2, n3] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12"), addNode(3, "192.168.77.13")];
    writeNodes([n1!, n2!, n3!]);
    for (const n of nodes) startAgent(n);
    await until("n1 converged", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(expectedTunnel([n2!, n3!])));

    writeNodes([n1!, n2!]);
    await until("n3 gone from n1", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(expectedTunnel([n2!])));
    await until("n3 gone from n2", () => tunnelOf(overlay(n2!.ns)), (v) => JSON.stringify(v) === JSON.stringify(expectedTunnel([n1!])));
    await until("the log line", () => agents[0]!.log(), (l) => l.includes("route del 10.244.3.0/24 via 10.244.3.0 dev weft.1 onlink"));

    writeNodes([n1!, n2!, n3!]);
    await until("n3 back on n1", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(expectedTunnel([n2!, n3!])));
    expect(ping(n1!.ns, "10.244.3.0")).toBe(true);
  });

  // A device deleted by hand is the next test: the kernel's notification brings it back at once.
  it("repairs a misconfigured device and stray entries, replaying every entry", async () => {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    writeNodes([n1!, n2!]);
    startAgent(n1!);
    startAgent(n2!);
    const want = expectedTunnel([n2!]);
    await until("converged", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want));

    // Someone turns learning on (changed in place, so the agent, which hears of it at once,
    // never races a second command): it is made again as it should be.
    inNs(n1!.ns, "ip", "link", "set", "weft.1", "type", "vxlan", "learning");
    await until("device fixed", () => overlay(n1!.ns), (o) => o.device?.learning === false && o.device.up && JSON.stringify(tunnelOf(o)) === JSON.stringify(want));
    await until("the log line", () => agents[0]!.log(), (l) => /link del weft\.1 \(learning true != false\)/.test(l));
    // An outer TTL of 1 (peers behind a router cut off), also changed in place.
    inNs(n1!.ns, "ip", "link", "set", "weft.1", "type", "vxlan", "ttl", "1");
    await until("the log line", () => agents[0]!.log(), (l) => /link del weft\.1 \(ttl 1\)/.test(l));
    await until("device fixed", () => overlay(n1!.ns), (o) => o.device?.up === true && JSON.stringify(tunnelOf(o)) === JSON.stringify(want));
    expect(inNs(n1!.ns, "ip", "-d", "link", "show", "weft.1")).not.toMatch(/ttl 1\b/);
    // A device made while no agent ran, of vxlan `kind` arguments: made again at start,
    // with a log line saying why.
    let agent = agents[0]!;
    const remadeAtStart = async (kind: string[], why: RegExp): Promise<void> => {
      await stopAgent(agent);
      inNs(n1!.ns, "ip", "link", "del", "weft.1");
      inNs(n1!.ns, "ip", "link", "add", "weft.1", "type", "vxlan", "local", n1!.ip, "dev", "eth0", "dstport", "4789", ...kind);
      agent = startAgent(n1!);
      await until("the log line", () => agent.log(), (l) => why.test(l));
      await until("device fixed", () => overlay(n1!.ns), (o) => o.device?.vni === 1 && o.device.up && JSON.stringify(tunnelOf(o)) === JSON.stringify(want));
    };
    // One with the wrong VNI.
    await remadeAtStart(["id", "9"], /link del weft\.1 \(vni 9 != 1, .*learning true != false\)/);
    // One whose outer TTL follows the inner packet's (set only at creation).
    await remadeAtStart(["id", "1", "nolearning", "ttl", "inherit"], /link del weft\.1 \(ttl inherit\)/);
    // One as asked but that also sends frames elsewhere than the FDB says.
    await remadeAtStart(["id", "1", "nolearning", "remote", "192.168.77.99", "l2miss", "l3miss"], /link del weft\.1 \(group 192\.168\.77\.99, l2miss, l3miss\)/);
    expect(inNs(n1!.ns, "ip", "-d", "link", "show", "weft.1")).not.toMatch(/remote|l2miss|l3miss/);
    // A peer's entry sent to another UDP port, appended beside the right one or in its
    // place: the odd one goes, named by its port (deleted by address alone, the kernel would
    // take the right one).
    inNs(n1!.ns, "bridge", "fdb", "append", mac(n2!.ip), "dev", "weft.1", "dst", n2!.ip, "port", "9999", "self", "permanent");
    await until("entries fixed", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want));
    inNs(n1!.ns, "bridge", "fdb", "replace", mac(n2!.ip), "dev", "weft.1", "dst", n2!.ip, "port", "9999", "self", "permanent");
    await until("entries fixed", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want));
    expect(inNs(n1!.ns, "bridge", "fdb", "show", "dev", "weft.1")).not.toContain("port 9999");
    // A stray entry on our device, and a wrong neighbor MAC, are corrected too.
    inNs(n1!.ns, "ip", "neigh", "replace", "10.244.2.0", "lladdr", "0e:fe:00:00:00:99", "dev", "weft.1", "nud", "permanent");
    inNs(n1!.ns, "bridge", "fdb", "append", "0e:fe:00:00:00:99", "dev", "weft.1", "dst", "192.168.77.99", "self", "permanent");
    await until("entries fixed", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want));
  });

  it("repairs its device, routes, neighbors and FDB entries at once, from kernel notifications, without waiting for the resync", async () => {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    writeNodes([n1!, n2!]);
    startAgent(n1!, ["--resync", "300"]);
    startAgent(n2!, ["--resync", "300"]);
    const want = expectedTunnel([n2!]);
    await until("converged", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want));
    inNs(n1!.ns, "ip", "link", "del", "weft.1");
    await until("device back", () => overlay(n1!.ns), (o) => o.device?.up === true && JSON.stringify(tunnelOf(o)) === JSON.stringify(want), AT_ONCE);
    // One log line per change: the device made again (the log arrives after the kernel state).
    await until("the log line", () => agents[0]!.log().split("link add weft.1").length - 1, (n) => n === 2);
    expect(ping(n1!.ns, "10.244.2.0")).toBe(true);
    // A wrong MTU set by hand is put back the same way.
    const mtu = overlay(n1!.ns).device!.mtu;
    inNs(n1!.ns, "ip", "link", "set", "weft.1", "mtu", "1200");
    await until("MTU back", () => overlay(n1!.ns).device?.mtu, (m) => m === mtu, AT_ONCE);
    // So are a route, a neighbor and an FDB entry deleted by hand.
    inNs(n1!.ns, "ip", "route", "del", n2!.podCIDR);
    await until("route back", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want), AT_ONCE);
    // Or made a blackhole, still under our protocol number: replaced by the route again.
    inNs(n1!.ns, "ip", "route", "replace", "blackhole", n2!.podCIDR, "proto", "87");
    await until("route back", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want), AT_ONCE);
    expect(inNs(n1!.ns, "ip", "route", "show", "type", "blackhole")).toBe("");
    inNs(n1!.ns, "ip", "neigh", "del", "10.244.2.0", "dev", "weft.1");
    await until("neighbor back", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want), AT_ONCE);
    inNs(n1!.ns, "bridge", "fdb", "del", mac(n2!.ip), "dev", "weft.1", "dst", n2!.ip, "self");
    await until("FDB entry back", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want), AT_ONCE);
    expect(ping(n1!.ns, "10.244.2.0")).toBe(true);
  });

  it("repairs a change made while a run was repairing another: the run that heard of it looks again", async () => {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    writeNodes([n1!, n2!]);
    // node1's nft waits 3 s first: a run that puts its table back lasts that long.
    const slow = slowPath("agent-slow-nft", ["nft"], 3);
    const inSlowNft = () => spawnSync("pgrep", ["-f", join(slow, "nft")]).status === 0;
    startAgent(n1!, ["--resync", "600"], undefined, { ...process.env, PATH: `${slow}:${process.env["PATH"]}` });
    const want = expectedTunnel([n2!]);
    const table = () => nsTry(n1!.ns, "nft", "list", "table", "ip", "weft-overlay").ok;
    await until("converged", () => table() && JSON.stringify(tunnelOf(overlay(n1!.ns))) === JSON.stringify(want), (v) => v);
    await until("the first run over", inSlowNft, (v) => !v);
    await new Promise((r) => setTimeout(r, 1500)); // and the runs that look again after it

    inNs(n1!.ns, "nft", "delete", "table", "ip", "weft-overlay");
    await until("the run putting the table back in its nft", inSlowNft, (v) => v, AT_ONCE);
    // That run has put the routes right already: this one is for the next run to see.
    inNs(n1!.ns, "ip", "route", "del", n2!.podCIDR);
    expect(inSlowNft()).toBe(true);
    await until("the table back", table, (v) => v, AT_ONCE);
    await until("the route back", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want), AT_ONCE);
  });

  it("converges on every resync too: a change no notification reports is put back within one period", async () => {
    // ip_forward turned off sends nothing the kernel watch listens to: only the resync sees it.
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    writeNodes([n1!, n2!]);
    const [fast, slow] = [startAgent(n1!) /* --resync 2 */, startAgent(n2!, ["--resync", "300"])];
    const forwarding = (n: TestNode) => inNs(n.ns, "cat", "/proc/sys/net/ipv4/ip_forward").trim();
    const turnedOn = (a: Agent) => a.log().split("sysctl net.ipv4.ip_forward=1").length - 1;
    for (const a of [fast, slow]) await until("started", () => turnedOn(a), (k) => k === 1);
    for (const n of [n1!, n2!]) inNs(n.ns, "sysctl", "-qw", "net.ipv4.ip_forward=0");
    await until("forwarding back on the node resyncing every 2 s", () => forwarding(n1!), (v) => v === "1");
    // One log line for the change (the log arrives after the kernel state).
    await until("the log line", () => turnedOn(fast), (k) => k === 2);
    // The other agent's period is 300 s: nothing else put it back.
    expect(forwarding(n2!)).toBe("0");
    expect(turnedOn(slow)).toBe(1);
  });

  it("writes subnet.json and the conflist only once its own subnet is known and the device is up; --ready-file exists exactly while it is ready", async () => {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    writeNodes([n2!]); // n1 not listed yet
    const ready = join(dir, "n1-ready");
    const a = startAgent(n1!, ["--ready-file", ready]);
    await until("waiting log", () => a.log(), (l) => l.includes('waiting: node "n1" is not in the node list yet'));
    expect(overlay(n1!.ns).device).toBeNull();
    expect(existsSync(join(n1!.stateDir, "subnet.json"))).toBe(false);
    expect(existsSync(join(n1!.confDir, "10-weft.conflist"))).toBe(false);
    expect(existsSync(ready)).toBe(false);

    writeNodes([n1!, n2!]);
    await until("conflist", () => existsSync(join(n1!.confDir, "10-weft.conflist")), (v) => v);
    // By the time the conflist exists, the device and subnet.json are there.
    expect(overlay(n1!.ns).device).toMatchObject({ up: true, vni: 1 });
    expect(existsSync(join(n1!.stateDir, "subnet.json"))).toBe(true);
    const log = await until("the log", () => a.log(), (l) => l.includes("10-weft.conflist"));
    expect(log.indexOf("link add weft.1")).toBeLessThan(log.indexOf("subnet.json"));
    expect(log.indexOf("subnet.json")).toBeLessThan(log.indexOf("10-weft.conflist"));
    await until("ready", () => existsSync(ready), (v) => v);

    // Its own node gone from the list: not ready any more, though the files stay.
    writeNodes([n2!]);
    await until("not ready", () => existsSync(ready), (v) => !v);
    expect(existsSync(join(n1!.confDir, "10-weft.conflist"))).toBe(true);
  });

  it("routes same-subnet peers directly with --direct-routing auto, others through the tunnel", async () => {
    // n3 sits on another IP subnet of the same wire: reachable, but not "same L2 subnet".
    const n1 = addNode(1, "192.168.77.11", { onLinkRoutes: ["192.168.78.0/24"] });
    const n2 = addNode(2, "192.168.77.12", { onLinkRoutes: ["192.168.78.0/24"] });
    const n3 = addNode(3, "192.168.78.13", { onLinkRoutes: ["192.168.77.0/24"] });
    writeNodes([n1, n2, n3]);
    for (const n of nodes) startAgent(n, ["--direct-routing", "auto"]);
    await until(
      "n1 converged",
      () => tunnelOf(overlay(n1.ns)),
      (v) =>
        JSON.stringify(v) ===
        JSON.stringify({
          routes: ["10.244.2.0/24 via 192.168.77.12 dev eth0", "10.244.3.0/24 via 10.244.3.0 dev weft.1 onlink"],
          neigh: [`10.244.3.0 ${mac(n3.ip)} PERMANENT`],
          fdb: [`${mac(n3.ip)} dst ${n3.ip} self permanent`],
        }),
    );
    await until("n3 converged", () => tunnelOf(overlay(n3.ns)), (v) => JSON.stringify(v) === JSON.stringify(expectedTunnel([n1, n2])));
    expect(ping(n1.ns, "10.244.3.0")).toBe(true);
  });

  it("leaves foreign routes alone, and the dataplane in place on SIGTERM; a restart changes nothing", async () => {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    // Not ours: same prefix family, other protocol. Ours but stale: protocol 87, unwanted.
    inNs(n1!.ns, "ip", "route", "add", "10.244.9.0/24", "via", "192.168.77.99", "dev", "eth0");
    inNs(n1!.ns, "ip", "route", "add", "10.244.8.0/24", "via", "192.168.77.98", "dev", "eth0", "proto", "87");
    writeNodes([n1!, n2!]);
    const a = startAgent(n1!);
    const want = expectedTunnel([n2!]);
    await until("converged", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(want));
    const all = ipJson<Array<{ dst: string }>>(n1!.ns, "-4", "route").map((r) => r.dst);
    expect(all).toContain("10.244.9.0/24");
    expect(all).not.toContain("10.244.8.0/24");

    expect(await stopAgent(a)).toBe(0);
    expect(a.log()).toContain("SIGTERM: stopping, dataplane left in place");
    const before = overlay(n1!.ns);
    expect(tunnelOf(before)).toEqual(want);
    expect(nsTry(n1!.ns, "nft", "list", "table", "ip", "weft-overlay").ok).toBe(true);

    const ready = join(dir, "n1-ready");
    const b = startAgent(n1!, ["--ready-file", ready]);
    await until("the start-up reconcile", () => existsSync(ready), (v) => v);
    await new Promise((r) => setTimeout(r, 2500)); // and one resync
    // Only the start-up lines: the banner, whether the fast path is on and, when it is, the
    // new agent's program and maps in place of the old one's. Nothing of the overlay changes.
    const [, fastPath, ...rest] = b.log().trim().split("\n");
    expect(fastPath).toMatch(/^fast path (on|off: )/);
    const takingOver = (l: string) => /^fast path: on (eth0|weft\.1) \(ifindex \d+\)$/.test(l) || l.startsWith(`fast path: on for pods in ${n2!.podCIDR} `);
    expect(rest.filter((l) => !takingOver(l))).toEqual([]);
    expect(overlay(n1!.ns)).toEqual(before);
  });

  it("with --masquerade=false removes its NAT table", async () => {
    const n1 = addNode(1, "192.168.77.11");
    writeNodes([n1]);
    const a = startAgent(n1);
    await until("NAT table", () => nsTry(n1.ns, "nft", "list", "table", "ip", "weft-overlay").ok, (v) => v);
    await stopAgent(a);
    startAgent(n1, ["--masquerade=false"]);
    await until("no NAT table", () => nsTry(n1.ns, "nft", "list", "table", "ip", "weft-overlay").ok, (v) => !v);
  });

  it("keeps pods talking across nodes when FORWARD's policy turns to DROP after they started", async () => {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    writeNodes([n1!, n2!]);
    // A resync far away: what happens below is the agents acting on nftables notifications.
    for (const n of [n1!, n2!]) startAgent(n, ["--resync", "600"]);
    const [c1, c2] = [await weftConf(n1!), await weftConf(n2!)];
    const [p1, p2] = [weftPod(n1!, c1, "fwd-0"), weftPod(n2!, c2, "fwd-1")];
    expect(ping(p1.ns, p2.ip)).toBe(true);

    // What Docker does when it starts: the pods were wired before, under ACCEPT.
    for (const n of [n1!, n2!]) inNs(n.ns, "iptables", "-P", "FORWARD", "DROP");
    await until("the agents mark pod traffic", () => agents.every((a) => a.log().includes("for FORWARD accept")), (v) => v, AT_ONCE);
    expect(ping(p1.ns, p2.ip)).toBe(true);
    expect(inNs(n1!.ns, "iptables", "-S", "FORWARD")).toMatch(/-m mark --mark 0x1000\/0x1000 .*-j ACCEPT/);

    // An address added to the device by hand: gone within a moment too. (Each change below
    // waits for the runs that repaired the one before to end: runs that keep changing what
    // they hear stop after two looks and leave the rest to the resync, 600 s away here.)
    const passOver = () => new Promise((r) => setTimeout(r, 1500));
    inNs(n1!.ns, "ip", "addr", "add", "10.9.9.9/32", "dev", "weft.1");
    await until("the stray address gone", () => inNs(n1!.ns, "ip", "-4", "addr", "show", "dev", "weft.1"), (a) => !a.includes("10.9.9.9"), AT_ONCE);
    await passOver();

    // The agent's table or iptables' accept rule removed by hand: back within a moment.
    inNs(n1!.ns, "nft", "delete", "table", "ip", "weft-overlay");
    await until("the table back", () => nsTry(n1!.ns, "nft", "list", "chain", "ip", "weft-overlay", "forward").ok, (v) => v, AT_ONCE);
    await passOver();
    // Or made dormant, given a chain of someone else's that drops, or its own chain's policy
    // turned to drop: made again as it should be.
    const table = () => inNs(n1!.ns, "nft", "list", "table", "ip", "weft-overlay");
    inNs(n1!.ns, "nft", "add", "table", "ip", "weft-overlay", "{ flags dormant; }");
    await until("the table awake", table, (t) => !t.includes("dormant") && t.includes("chain forward"), AT_ONCE);
    await passOver();
    inNs(n1!.ns, "nft", "add", "chain", "ip", "weft-overlay", "stray", "{ type filter hook forward priority 10; policy drop; }");
    await until("the stray chain gone", table, (t) => !t.includes("stray") && t.includes("chain forward"), AT_ONCE);
    await passOver();
    inNs(n1!.ns, "nft", "add", "chain", "ip", "weft-overlay", "forward", "{ policy drop; }");
    await until("the policy back", table, (t) => !t.includes("policy drop") && t.includes("chain forward"), AT_ONCE);
    await passOver();
    expect(ping(p1.ns, p2.ip)).toBe(true);
    inNs(n1!.ns, "iptables", "-F", "FORWARD");
    await until("the accept rule back", () => inNs(n1!.ns, "iptables", "-S", "FORWARD"), (v) => v.includes("--mark 0x1000/0x1000"), AT_ONCE);
    expect(ping(p1.ns, p2.ip)).toBe(true);

    // A pod added now gets no rule of its own: the agent's marks cover the whole pod CIDR.
    const late = weftPod(n1!, c1, "fwd-late");
    expect(nsTry(n1!.ns, "nft", "list", "table", "inet", "weft").ok).toBe(false);
    expect(ping(late.ns, p2.ip)).toBe(true);

    // Back to ACCEPT: the marks go; pods still talk.
    for (const n of [n1!, n2!]) inNs(n.ns, "iptables", "-P", "FORWARD", "ACCEPT");
    await until("no forward chain", () => nsTry(n1!.ns, "nft", "list", "chain", "ip", "weft-overlay", "forward").ok, (v) => !v, AT_ONCE);
    expect(ping(p1.ns, p2.ip)).toBe(true);

    // DROP again with node1's agent down (or behind): a pod added now marks itself.
    await stopAgent(agents[0]!);
    inNs(n1!.ns, "iptables", "-P", "FORWARD", "DROP");
    const alone = weftPod(n1!, c1, "fwd-alone");
    expect(inNs(n1!.ns, "nft", "list", "set", "inet", "weft", "pods4")).toContain(alone.ip);
    expect(ping(alone.ns, p2.ip)).toBe(true);
    expect(ping(p1.ns, p2.ip, 1)).toBe(false); // an older pod, not marked by anyone now
  });

  it("releases the address of a pod whose netns vanished without a DEL, within one resync; live pods keep theirs", async () => {
    const n1 = addNode(1, "192.168.77.11");
    writeNodes([n1]);
    const a = startAgent(n1);
    const conf = await weftConf(n1);
    // The lost pod's ADD found no `nft` on its PATH: its forward rules are iptables' (the
    // fallback), which the agent, finding `nft` on its own PATH, must remove too.
    const noNft = noNftPath("agent-gc");
    const pods = ["lost", "live"].map((id) => {
      const { ns, ip } = weftPod(n1, conf, `ctr-${id}`, undefined, id === "lost" ? { PATH: noNft } : undefined);
      return { id, ns, ip, reservation: join(n1.stateDir, "ipam", "weft", ip), saved: join(n1.stateDir, "attachments", `weft:ctr-${id}:eth0.json`) };
    });
    const [lost, live] = pods as [(typeof pods)[0], (typeof pods)[0]];
    for (const p of pods) expect(existsSync(p.reservation) && existsSync(p.saved), p.id).toBe(true);
    const lostRules = () => inNs(n1.ns, "iptables-nft-save").split("\n").filter((l) => l.includes("weft/ctr-lost/eth0"));
    expect(lostRules().join("\n")).toContain(`-s ${lost.ip}/32`);

    deleteNetns(lost.ns); // the runtime tore the pod down and never called DEL
    await until("the GC log line", () => a.log(), (l) => l.includes("gc: released ctr-lost/eth0")); // --resync 2
    expect(existsSync(lost.reservation)).toBe(false);
    expect(existsSync(lost.saved)).toBe(false);
    expect(lostRules()).toEqual([]);
    expect(existsSync(live.reservation) && existsSync(live.saved)).toBe(true);
    expect(a.log()).not.toContain("ctr-live");
    // The freed address goes to the next pod that asks for it.
    expect(weftPod(n1, conf, "ctr-next", `IP=${lost.ip}`).ip).toBe(lost.ip);
  });

  it("leaves a pod whose netns vanished alone while a plugin holds its attachment's lock, and releases it after", async () => {
    const n1 = addNode(1, "192.168.77.11");
    writeNodes([n1]);
    const a = startAgent(n1); // --resync 2
    const conf = await weftConf(n1);
    const { ns, ip } = weftPod(n1, conf, "ctr-busy");
    const lost = weftPod(n1, conf, "ctr-lost"); // no lock held: shows when a pass has run
    const saved = join(n1.stateDir, "attachments", "weft:ctr-busy:eth0.json");
    const reservation = join(n1.stateDir, "ipam", "weft", ip);
    const lock = await holdLock(join(n1.stateDir, "attachments", "weft:ctr-busy:eth0.lock"));
    try {
      deleteNetns(ns);
      deleteNetns(lost.ns);
      // A pass that released ctr-lost had found ctr-busy's netns gone too.
      await until("the GC log line", () => a.log(), (l) => l.includes("gc: released ctr-lost/eth0"));
      expect(existsSync(saved) && existsSync(reservation)).toBe(true);
      const busyLine = "gc: ctr-busy/eth0 left for a later pass: its netns is gone, but a plugin holds its lock";
      expect(a.log()).toContain(busyLine);
      // A later pass, still locked out, does not say it again.
      const later = weftPod(n1, conf, "ctr-later");
      deleteNetns(later.ns);
      await until("the GC log line", () => a.log(), (l) => l.includes("gc: released ctr-later/eth0"));
      expect(a.log().split(busyLine).length - 1).toBe(1);
      expect(a.log()).not.toContain("released ctr-busy");
    } finally {
      await lock.release();
    }
    await until("the GC log line", () => a.log(), (l) => l.includes("gc: released ctr-busy/eth0"));
    expect(existsSync(saved) || existsSync(reservation)).toBe(false);
    expect(readdirSync(join(n1.stateDir, "attachments"))).toEqual([]); // the lock file went with it
  });
});

describe("the fast path", () => {
  /** The name of a pod's host-side veth in its node: the peer of its eth0. */
  function hostVeth(n: TestNode, podNs: string): string {
    const [eth0] = ipJson<Array<{ link_index: number }>>(podNs, "link", "show", "eth0");
    return ipJson<Array<{ ifname: string; ifindex: number }>>(n.ns, "link", "show").find((l) => l.ifindex === eth0!.link_index)!.ifname;
  }

  /** How many pods' veths the agent's log says the fast path went on. */
  const vethsOn = (log: string) => log.split("fast path: on the veth of pod").length - 1;

  /** The programs on a device's tcx ingress in a node. */
  const programsOn = (n: TestNode, dev: string) => {
    const [link] = ipJson<Array<{ ifindex: number }>>(n.ns, "link", "show", "dev", dev);
    return inNetns(netnsPath(n.ns), () => tcxQuery(link!.ifindex, BPF_TCX_INGRESS));
  };

  const packets = (ns: string, dev: string, dir: "rx" | "tx") =>
    ipJson<Array<{ stats64: Record<"rx" | "tx", { packets: number }> }>>(ns, "-s", "link", "show", "dev", dev)[0]!.stats64[dir].packets;

  /**
   * 20 MB over TCP from one pod to another (on node `n`): the packets the receiving pod
   * took in, and those its host veth passed it (the bridge's way in).
   */
  function sendTcp(n: TestNode, from: string, to: { ns: string; ip: string }): { received: number; viaBridge: number } {
    const host = hostVeth(n, to.ns);
    const [rx0, tx0] = [packets(to.ns, "eth0", "rx"), packets(n.ns, host, "tx")];
    const server = spawn("ip", ["netns", "exec", to.ns, "nc", "-lk", "7000"], { stdio: "ignore" });
    children.push(server);
    const sent = nsTry(from, "sh", "-c", `for i in $(seq 50); do nc -z ${to.ip} 7000 2>/dev/null && break; sleep 0.05; done; head -c 20000000 /dev/zero | nc -N ${to.ip} 7000`);
    expect(sent.ok, sent.out).toBe(true);
    return { received: packets(to.ns, "eth0", "rx") - rx0, viaBridge: packets(n.ns, host, "tx") - tx0 };
  }

  /** One UDP datagram to argv[1]:argv[2], and what came back: "answered", "refused" (ICMP port unreachable) or "no answer". */
  const UDP_PROBE = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"x")
try:
    s.recv(1)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("no answer")
`;

  /** A TCP connection to argv[1]:80, and what came of it: "connected", "no answer" or the error. */
  const TCP_CONNECT = `
import socket, sys
s = socket.socket()
s.settimeout(8)
try:
    s.connect((sys.argv[1], 80))
    print("connected")
except socket.timeout:
    print("no answer")
except OSError as e:
    print(e.strerror)
`;

  /** A python3 `script` (which prints "listening" when it is) run in netns `ns` with `args`, once it listens: what it printed so far, and its end. */
  async function listening(ns: string, script: string, ...args: string[]): Promise<{ out: () => string; closed: Promise<unknown> }> {
    const child = spawn("ip", ["netns", "exec", ns, "python3", "-c", script, ...args], { stdio: ["ignore", "pipe", "ignore"] });
    children.push(child);
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    const closed = new Promise((r) => child.on("close", r));
    await until("the listener", () => out, (t) => t.includes("listening"));
    return { out: () => out, closed };
  }

  /** Prints each UDP datagram to port 9999 up to the one whose text is argv[1]. */
  const UDP_LISTEN = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 9999))
# Not an idle timeout: the steps before the last datagram may be slow on a loaded machine.
s.settimeout(10)
print("listening", flush=True)
try:
    while True:
        d = s.recv(100).decode()
        print(d, flush=True)
        if d == sys.argv[1]:
            break
except socket.timeout:
    pass
`;

  /** One Ethernet frame out of argv[1]: to MAC argv[2], UDP from argv[3] to argv[4]:9999, "spoofed". */
  const SPOOFED_FRAME = `
import socket, struct, sys
dev, mac, src, dst = sys.argv[1:5]
def checksum(b):
    s = sum(struct.unpack("!10H", b))
    s = (s & 0xffff) + (s >> 16)
    return ~((s & 0xffff) + (s >> 16)) & 0xffff
udp = struct.pack("!HHHH", 40000, 9999, 15, 0) + b"spoofed"
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(dst))
ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((dev, 0))
s.send(bytes.fromhex(mac.replace(":", "")) + bytes.fromhex("020000000001") + b"\\x08\\x00" + ip + udp)
`;

  /** A TCP server on port argv[1] that sends each connection the line argv[2], then closes it. */
  const SERVE_LINE = `
import socket, sys
s = socket.socket()
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode() + b"\\n")
    c.close()
`;

  /** kube-proxy's rule in a node: what conntrack calls INVALID (a reply to a flow it never saw) is dropped in FORWARD. */
  const dropInvalid = (n: TestNode) => inNs(n.ns, "iptables", "-A", "FORWARD", "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP");

  /**
   * kube-proxy's part, as its rules do it: a ClusterIP (10.96.0.10:80) in `nat`, `from`'s
   * node, DNATed to `to`:7001. `to`'s reply must come back from the ClusterIP, which only
   * conntrack in that node can do.
   */
  async function expectServiceReply(nat: TestNode, from: { ns: string }, to: { ns: string; ip: string }): Promise<void> {
    inNs(nat.ns, "nft", "add table ip wt-svc; add chain ip wt-svc pre { type nat hook prerouting priority dstnat; }; add rule ip wt-svc pre ip daddr 10.96.0.10 tcp dport 80 dnat to " + `${to.ip}:7001`);
    await listening(to.ns, SERVE_LINE, "7001", "from-the-service");
    // The server closes each connection after its line, so nc ends then, not on its timeout.
    const got = nsTry(from.ns, "sh", "-c", "for i in $(seq 3); do r=$(nc -w 5 10.96.0.10 80 </dev/null) && [ -n \"$r\" ] && echo \"$r\" && exit 0; sleep 0.1; done; exit 1");
    expect(got.out.trim()).toBe("from-the-service");
  }

  /**
   * UDP from `from` to a closed port of `to` is refused, directly and through a Service
   * (10.96.0.10:53 in `nat`, after expectServiceReply): the error quotes `to`'s port, which
   * conntrack must turn back into the ClusterIP's for `from`'s socket to take it.
   */
  function expectRefused(nat: TestNode, from: { ns: string }, to: { ip: string }): void {
    expect(nsTry(from.ns, "python3", "-c", UDP_PROBE, to.ip, "9").out.trim()).toBe("refused");
    inNs(nat.ns, "nft", `add rule ip wt-svc pre ip daddr 10.96.0.10 udp dport 53 dnat to ${to.ip}:9`);
    expect(nsTry(from.ns, "python3", "-c", UDP_PROBE, "10.96.0.10", "53").out.trim()).toBe("refused");
  }

  /** Whether the agent's start-up line says the fast path is on; the test is skipped where this kernel cannot take it. */
  async function fastPathOn(a: Agent, ctx: TestContext): Promise<void> {
    const line = await until("the fast path's start-up line", () => a.log(), (l) => /^fast path (on|off)/m.test(l));
    const off = /^fast path off: .*/m.exec(line);
    if (off) ctx.skip(off[0]);
  }

  // --resync 300: what brings the fast path to a new pod is its ADD, not the resync.
  async function nodeWithPods(ctx: TestContext): Promise<{ n: TestNode; a: Agent; p1: { ns: string; ip: string }; p2: { ns: string; ip: string } }> {
    const n = addNode(1, "192.168.77.11");
    writeNodes([n]);
    const a = startAgent(n, ["--resync", "300"]);
    await fastPathOn(a, ctx);
    const conf = await weftConf(n);
    // One at a time: each ADD's own saved attachment, the first thing it writes, must bring it.
    const p1 = weftPod(n, conf, "ctr-1");
    await until("the fast path on the first pod", () => a.log(), (l) => vethsOn(l) === 1);
    const p2 = weftPod(n, conf, "ctr-2");
    await until("the fast path on both pods", () => a.log(), (l) => vethsOn(l) === 2);
    return { n, a, p1, p2 };
  }

  it("carries TCP between two pods of a node from veth to veth, past the bridge, while a Service's reply from a pod of the node still passes conntrack", async (ctx) => {
    const { n, p1, p2 } = await nodeWithPods(ctx);
    const { received, viaBridge } = sendTcp(n, p1.ns, p2);
    expect(received).toBeGreaterThan(100);
    expect(viaBridge).toBeLessThan(10); // neighbour discovery, not the transfer

    // A ClusterIP DNATed to p2 in the node.
    if (!nsTry(n.ns, "test", "-e", "/proc/sys/net/bridge").ok) ctx.skip("br_netfilter not loaded: bridged Service replies cannot be un-DNATed at all");
    await expectServiceReply(n, p1, p2);
    // A UDP datagram to a port nobody listens on is refused: the ICMP error goes the way
    // its flow went, for where FORWARD drops what conntrack calls INVALID (kube-proxy's
    // rule), an error about a flow conntrack never saw is INVALID.
    dropInvalid(n);
    expectRefused(n, p1, p2);
  });

  it("a restarted agent puts its program in place of the old one: one program per veth, and the pods still skip the bridge", async (ctx) => {
    const { n, a, p1, p2 } = await nodeWithPods(ctx);
    expect(await stopAgent(a)).toBe(0);
    const b = startAgent(n);
    await until("the fast path on both pods again", () => b.log(), (l) => vethsOn(l) === 2);
    for (const dev of [hostVeth(n, p1.ns), hostVeth(n, p2.ns), "eth0", "weft.1"]) expect(programsOn(n, dev), dev).toHaveLength(1);
    expect(sendTcp(n, p1.ns, p2).viaBridge).toBeLessThan(10);
  });

  it("forgets a deleted pod; an agent with --fast-path never takes the programs off, and the bridge carries the pods again", async (ctx) => {
    const { n, a, p1, p2 } = await nodeWithPods(ctx);
    const conf = await weftConf(n);
    const del = cni({ plugin: "weft", command: "DEL", conf, hostNs: n.ns, containerId: "ctr-2", netns: netnsPath(p2.ns) });
    expect(del.code, del.stdout).toBe(0);
    await until("the deleted pod forgotten", () => a.log(), (l) => l.includes(`fast path: forgot pod ${p2.ip}`));
    // p3 in the old agent's map too: were its program left on p1's veth, p1 to p3 would skip the bridge.
    const p3 = weftPod(n, conf, "ctr-3");
    await until("the fast path on p3", () => a.log(), (l) => vethsOn(l) === 3);

    expect(await stopAgent(a)).toBe(0);
    const b = startAgent(n, ["--fast-path", "never"]);
    const host = hostVeth(n, p1.ns);
    await until("the program off p1's veth", () => b.log(), (l) => l.includes(`fast path: off the veth ${host}`));
    for (const dev of [host, "eth0", "weft.1"]) expect(programsOn(n, dev), dev).toEqual([]);
    expect(sendTcp(n, p1.ns, p3).viaBridge).toBeGreaterThan(100);
    expect(b.log()).toContain("fast path never");
  });

  it("an agent run with another --vni takes the earlier agent's program off the VXLAN device it no longer uses", async (ctx) => {
    const n = addNode(1, "192.168.77.11");
    writeNodes([n]);
    const a = startAgent(n, ["--resync", "300"]);
    await fastPathOn(a, ctx);
    await until("the program on weft.1", () => a.log(), (l) => l.includes("fast path: on weft.1 "));
    expect(await stopAgent(a)).toBe(0);

    const b = startAgent(n, ["--resync", "300", "--vni", "2"]);
    await until("the program off weft.1", () => b.log(), (l) => l.includes("fast path: off weft.1, no pod's veth or way in now"));
    expect(programsOn(n, "weft.1")).toEqual([]);
    for (const dev of ["eth0", "weft.2"]) expect(programsOn(n, dev), dev).toHaveLength(1);

    // --fast-path never takes them off every device, not only those it uses.
    expect(await stopAgent(b)).toBe(0);
    const c = startAgent(n, ["--resync", "300", "--fast-path", "never"]);
    await until("the program off weft.2", () => c.log(), (l) => l.includes("fast path: off weft.2"));
    for (const dev of ["eth0", "weft.1", "weft.2"]) expect(programsOn(n, dev), dev).toEqual([]);
  });

  it("puts nothing from the underlay into a pod past the kernel: a frame sent to a pod's MAC from the switch is dropped, as one for another host", async (ctx) => {
    const { n, p1, p2 } = await nodeWithPods(ctx);
    const [eth0] = ipJson<Array<{ address: string }>>(p1.ns, "link", "show", "eth0");
    const listener = await listening(p1.ns, UDP_LISTEN, "legit");
    // From p2's address, onto the node's underlay (p1: the switch's port to node 1): a pod's
    // own frame, but not by its own veth.
    const underlayIn = packets(n.ns, "eth0", "rx");
    inNs(sw, "python3", "-c", SPOOFED_FRAME, "p1", eth0!.address, p2.ip, p1.ip);
    expect(packets(n.ns, "eth0", "rx")).toBeGreaterThan(underlayIn); // it reached the node
    expect(nsTry(p2.ns, "python3", "-c", `import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"legit", ("${p1.ip}", 9999))`).ok).toBe(true);
    await listener.closed;
    expect(listener.out().split("\n").filter((l) => l && l !== "listening")).toEqual(["legit"]);
  });

  /** Two nodes whose agents run with `extra`, a pod on each, the fast path on both pods and for each other's. */
  async function twoNodes(ctx: TestContext, extra: string[]) {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    writeNodes([n1, n2]);
    const [a1, a2] = [startAgent(n1, ["--resync", "300", ...extra]), startAgent(n2, ["--resync", "300", ...extra])];
    await fastPathOn(a1, ctx);
    const p1 = weftPod(n1, await weftConf(n1), "ctr-1");
    const p3 = weftPod(n2, await weftConf(n2), "ctr-3");
    for (const [a, other] of [[a1, n2], [a2, n1]] as const) {
      await until("the fast path on the pod, and for the other node's", () => a.log(), (l) => vethsOn(l) === 1 && l.includes(`fast path: on for pods in ${other.podCIDR}`));
    }
    return { n1, n2, p1, p3 };
  }

  /** What `fn` adds to each named device's packet count ([netns, device, direction]). */
  function counted<T, K extends string>(devices: Record<K, [string, string, "rx" | "tx"]>, fn: () => T): [T, Record<K, number>] {
    const entries = Object.entries(devices) as Array<[K, [string, string, "rx" | "tx"]]>;
    const before = entries.map(([, d]) => packets(...d));
    const r = fn();
    return [r, Object.fromEntries(entries.map(([name, d], i) => [name, packets(...d) - before[i]!])) as Record<K, number>];
  }

  for (const [directRouting, out] of [["never", "weft.1"], ["auto", "eth0"]] as const) {
    it(`carries TCP to a pod of another node past both nodes' bridges, out by ${out} (--direct-routing ${directRouting})`, async (ctx) => {
      const { n1, n2, p1, p3 } = await twoNodes(ctx, ["--direct-routing", directRouting]);
      const [sent, n] = counted(
        {
          leftBy: [n1.ns, out, "tx"],
          viaTunnel: [n1.ns, "weft.1", "tx"],
          intoBridge1: [n1.ns, "weft0", "rx"],
          intoBridge2: [n2.ns, "weft0", "rx"],
          toP1: [n1.ns, hostVeth(n1, p1.ns), "tx"],
        },
        () => sendTcp(n2, p1.ns, p3),
      );
      expect(sent.received).toBeGreaterThan(100);
      expect(n.leftBy).toBeGreaterThan(100);
      if (out === "eth0") expect(n.viaTunnel).toBeLessThan(10);
      // A node's bridge device takes in what the node routes from its pods; a pod's host
      // veth passes it what its node routes to it. None saw the transfer, either way.
      expect(n.intoBridge1).toBeLessThan(10);
      expect(sent.viaBridge).toBeLessThan(10);
      expect(n.intoBridge2).toBeLessThan(10); // p3's acknowledgements
      expect(n.toP1).toBeLessThan(10);
    });
  }

  it("takes a packet from another node's pod only by the device that node's traffic comes by: one from a VXLAN peer's pod on the underlay goes the kernel's way", async (ctx) => {
    const { n2, p1, p3 } = await twoNodes(ctx, ["--direct-routing", "never"]);
    // What node2's kernel sees of it: its prerouting hook, which the fast path would skip.
    inNs(n2.ns, "nft", "add table ip wt-probe; add chain ip wt-probe pre { type filter hook prerouting priority raw; }; add rule ip wt-probe pre udp dport 9999 counter");
    const [eth0] = ipJson<Array<{ address: string }>>(n2.ns, "link", "show", "eth0");
    // From p1's address, to node2's underlay MAC (p2: the switch's port to node 2), not through the tunnel.
    inNs(sw, "python3", "-c", SPOOFED_FRAME, "p2", eth0!.address, p1.ip, p3.ip);
    await until("node2's kernel seeing it", () => inNs(n2.ns, "nft", "list", "chain", "ip", "wt-probe", "pre"), (t) => /counter packets 1 /.test(t));
  });

  it("across nodes leaves conntrack what it knows: a Service's reply, ICMP errors, the node's own traffic to a pod", async (ctx) => {
    const { n1, n2, p1, p3 } = await twoNodes(ctx, ["--direct-routing", "auto"]);
    for (const n of [n1, n2]) dropInvalid(n);
    // A ClusterIP in node1 DNATed to p3 on node2: p3's reply must come back from the
    // ClusterIP, which only conntrack in node1 can do.
    await expectServiceReply(n1, p1, p3);
    // UDP to a closed port of the other node's pod is refused, directly and through a Service.
    expectRefused(n1, p1, p3);

    // node2's own error about p1's connection to an address of node2's pods that nobody
    // has: from node2's underlay address, about a flow node1's conntrack never saw. It goes
    // that flow's way, and p1 learns at once that the host is unreachable.
    const nobody = n2.podCIDR.replace(/\.0\/24$/, ".250");
    expect(nsTry(p1.ns, "python3", "-c", TCP_CONNECT, nobody).out.trim()).toBe("No route to host");

    // node1 itself (its underlay address: a NodePort's SNAT) to p3 and back: neither way
    // skips conntrack in node2, or p3's replies would be INVALID there.
    const fromNode = nsTry(n1.ns, "nc", "-z", "-w", "5", p3.ip, "7001"); // the Service's server above
    expect(fromNode.ok, fromNode.out).toBe(true);
  });
});

describe("weft agent --nodes kubernetes", () => {
  // A minimal API server inside the node's namespace (the agent must reach it there): LIST
  // returns the Node objects, WATCH stays open. Enough to show the compiled executable
  // loads its Kubernetes source and programs the overlay from Node objects.
  const FAKE_API = `
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
const [file, port] = process.argv.slice(2);
createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method !== "GET" || url.pathname !== "/api/v1/nodes") { res.writeHead(403).end(); return; }
  if (url.searchParams.get("watch") === "true") { res.writeHead(200, { "content-type": "application/json" }); res.flushHeaders(); return; }
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ kind: "NodeList", apiVersion: "v1", metadata: { resourceVersion: "7" }, items: JSON.parse(readFileSync(file, "utf8")) }));
}).listen(Number(port), "127.0.0.1", () => process.stdout.write("listening\\n"));
`;

  it("programs peers from Node objects (spec.podCIDRs, InternalIP)", async () => {
    const [n1, n2] = [addNode(1, "192.168.77.11"), addNode(2, "192.168.77.12")];
    const node = (n: TestNode) => ({
      metadata: { name: n.name, resourceVersion: "5" },
      spec: { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR] },
      status: { addresses: [{ type: "InternalIP", address: n.ip }] },
    });
    writeFileSync(join(dir, "nodes-k8s.json"), JSON.stringify([node(n1!), node(n2!)]));
    writeFileSync(join(dir, "fake-api.mjs"), FAKE_API);
    writeFileSync(
      join(dir, "kubeconfig"),
      `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:16443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`,
    );
    const api = spawn("ip", ["netns", "exec", n1!.ns, process.execPath, join(dir, "fake-api.mjs"), join(dir, "nodes-k8s.json"), "16443"], {
      stdio: ["ignore", "pipe", "inherit"],
      env: { ...process.env, NODE_EXTRA_CA_CERTS: "" },
    });
    children.push(api);
    await new Promise<void>((r) => api.stdout!.once("data", () => r()));

    const a = startAgent(n1!, ["--cluster-cidr", CLUSTER], ["--nodes", "kubernetes", "--kubeconfig", join(dir, "kubeconfig")]);
    await until("converged", () => tunnelOf(overlay(n1!.ns)), (v) => JSON.stringify(v) === JSON.stringify(expectedTunnel([n2!])));
    await until("conflist", () => existsSync(join(n1!.confDir, "10-weft.conflist")), (v) => v);
    await until("the start line", () => a.log(), (l) => l.includes("nodes from kubernetes"));
    expect(a.log()).not.toMatch(/DeprecationWarning/);
  });
});
