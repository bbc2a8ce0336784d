// weft's bridge plugin driven by real containerd: a private containerd 1.6 daemon, a
// busybox image built here, containers started with `ctr run --cni`, so go-cni inside
// ctr loads the conflist from /etc/cni/net.d and runs bridge/host-local from
// /opt/cni/bin, exactly as on a node.
//
// The host stays untouched: containerd and ctr run in a netns of this test (bridge, the
// nft table `inet weft`, ip_forward live there) and in a private mount namespace whose
// /etc, /var, /run and /opt are overlays with upper dirs in a temp dir (see
// test/helpers/containerd.ts). afterAll checks that no netns, link or mount of this test
// is left; the run's host check (test/helpers/global-host-check.ts) covers the rest.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN_DIR, requireBuild } from "../helpers/cni";
import { buildBusyboxImage, mountsUnder, PrivateContainerd, type CtrRun } from "../helpers/containerd";
import { inNs, netnsNames, run, tryInNs } from "../../lab/exec";

const PREFIX = `wtc${process.pid.toString(36)}`;
const HOST_NS = `${PREFIX}-host`; // the "node": containerd, ctr, the plugins
const OUT_NS = `${PREFIX}-out`; // a host outside the pod network, on a link of the node
const BRIDGE = `${PREFIX}br`;
const NET = `${PREFIX}-net`;
const SUBNET_PREFIX = "10.98.0.";
const GATEWAY = "10.98.0.1";
const NODE_UPLINK_IP = "10.97.0.1";
const OUTSIDE_IP = "10.97.0.2";
const IMAGE = `localhost/${PREFIX}/busybox:latest`;

describe("bridge + host-local driven by containerd (ctr run --cni)", () => {
  let work = "";
  let dataDir = "";
  let cd: PrivateContainerd | undefined;
  let c1: CtrRun;
  let c2: CtrRun;

  const fullId = (id: string): string => `${PREFIX}-${id}`; // what ctr passes as CNI_CONTAINERID

  function reservations(): Map<string, string> {
    const dir = join(dataDir, NET);
    const m = new Map<string, string>();
    if (!existsSync(dir)) return m;
    for (const f of readdirSync(dir)) {
      if (f === "lock" || f.startsWith("last_reserved_ip")) continue;
      m.set(f, readFileSync(join(dir, f), "utf8"));
    }
    return m;
  }

  /** The result ctr's libcni cached for the attachment (what DEL gets as prevResult). */
  function cachedResult(id: string): { ips: Array<{ address: string; gateway?: string }>; interfaces: Array<{ name: string; sandbox?: string }> } | undefined {
    const f = join(cd!.cacheDir, "results", `${NET}-${fullId(id)}-eth0`);
    if (!existsSync(f)) return undefined;
    return (JSON.parse(readFileSync(f, "utf8")) as { result: ReturnType<typeof cachedResult> }).result;
  }

  function hostVeth(id: string): string {
    const r = cachedResult(id);
    const veth = r?.interfaces.find((i) => !i.sandbox && i.name !== BRIDGE)?.name;
    if (!veth) throw new Error(`no host veth in the cached result of ${id}: ${JSON.stringify(r)}`);
    return veth;
  }

  const linkExists = (name: string): boolean => tryInNs(HOST_NS, "ip", "link", "show", "dev", name);
  const nftTable = (): string => inNs(HOST_NS, "nft", "list", "table", "inet", "weft");
  const mentions = (text: string, ip: string): boolean => new RegExp(`(^|[^0-9.])${ip.replace(/\./g, "\\.")}([^0-9]|$)`, "m").test(text);

  /** The container's IPv4 address on eth0, as the container sees it. */
  function containerIP(id: string): string {
    const r = cd!.exec(id, "ip", "-4", "addr", "show", "dev", "eth0");
    const ip = /inet (\d+\.\d+\.\d+\.\d+)\/24/.exec(r.out)?.[1];
    if (!r.ok || !ip) throw new Error(`no IPv4 address on eth0 in ${id}: ${r.out}`);
    return ip;
  }

  const ping = (id: string, ip: string): { ok: boolean; out: string } => cd!.exec(id, "ping", "-c", "1", "-W", "2", ip);

  beforeAll(async () => {
    requireBuild();
    work = mkdtempSync(join(tmpdir(), "weft-ctrd-"));
    dataDir = join(work, "ipam");

    run("ip", "netns", "add", HOST_NS);
    run("ip", "netns", "add", OUT_NS);
    inNs(HOST_NS, "ip", "link", "set", "lo", "up");
    inNs(HOST_NS, "ip", "link", "add", `${PREFIX}up`, "type", "veth", "peer", "name", "eth0", "netns", OUT_NS);
    inNs(HOST_NS, "ip", "addr", "add", `${NODE_UPLINK_IP}/24`, "dev", `${PREFIX}up`);
    inNs(HOST_NS, "ip", "link", "set", `${PREFIX}up`, "up");
    inNs(OUT_NS, "ip", "addr", "add", `${OUTSIDE_IP}/24`, "dev", "eth0");
    inNs(OUT_NS, "ip", "link", "set", "eth0", "up");
    inNs(OUT_NS, "ip", "link", "set", "lo", "up");

    cd = new PrivateContainerd({ namespace: PREFIX, workDir: join(work, "containerd"), netns: HOST_NS, cniBinDir: BIN_DIR });
    // conf-examples/10-bridge.conflist with test-unique names and a temp dataDir
    writeFileSync(
      join(work, "10-weft.conflist"),
      JSON.stringify({
        cniVersion: "1.0.0",
        name: NET,
        plugins: [
          {
            type: "bridge",
            bridge: BRIDGE,
            isGateway: true,
            ipMasq: true,
            hairpinMode: true,
            ipam: { type: "host-local", dataDir, ranges: [[{ subnet: `${SUBNET_PREFIX}0/24` }]], routes: [{ dst: "0.0.0.0/0" }] },
          },
        ],
      }),
    );

    const image = buildBusyboxImage({ dir: join(work, "image"), ref: IMAGE });
    try {
      await cd.start();
    } catch (e) {
      throw new Error(`cannot run containerd here (containerd + runc from build/setup.sh, root, cgroups, overlayfs needed): ${(e as Error).message}`);
    }
    writeFileSync(join(cd.confDir, "10-weft.conflist"), readFileSync(join(work, "10-weft.conflist")));
    cd.importImage(image);

    c1 = cd.runCni(IMAGE, "c1", ["sleep", "600"]);
    c2 = cd.runCni(IMAGE, "c2", ["sleep", "600"]);
    await cd.waitRunning(c1);
    await cd.waitRunning(c2);
  });

  afterAll(async () => {
    const problems: string[] = [];
    try {
      if (cd) problems.push(...(await cd.stop()));
    } finally {
      for (const ns of [HOST_NS, OUT_NS]) spawnSync("ip", ["netns", "del", ns]);
      if (work) {
        problems.push(...mountsUnder(work).map((m) => `mount left: ${m}`));
        rmSync(work, { recursive: true, force: true });
      }
    }
    const left = netnsNames(PREFIX);
    if (left.length) problems.push(`netns left: ${left.join(", ")}`);
    const links = run("ip", "-o", "link", "show").split("\n").filter((l) => l.includes(PREFIX));
    if (links.length) problems.push(`host links left: ${links.join("; ")}`);
    if (problems.length) throw new Error(`teardown left the host changed:\n${problems.join("\n")}`);
  });

  it("gives each container an address from the conflist's subnet, with the bridge as gateway", () => {
    const ip1 = containerIP("c1");
    const ip2 = containerIP("c2");
    for (const ip of [ip1, ip2]) {
      expect(ip.startsWith(SUBNET_PREFIX)).toBe(true);
      expect(ip).not.toBe(GATEWAY);
    }
    expect(ip1).not.toBe(ip2);

    // host-local's reservations in the temp dataDir name ctr's container IDs
    const res = reservations();
    expect(res.get(ip1)).toBe(`${fullId("c1")}\r\neth0`);
    expect(res.get(ip2)).toBe(`${fullId("c2")}\r\neth0`);
    // the result ctr got (and cached) matches what the container sees
    expect(cachedResult("c1")?.ips).toEqual([{ address: `${ip1}/24`, gateway: GATEWAY, interface: 2 }]);

    // the bridge in the node netns holds the gateway, the container routes via it
    expect(inNs(HOST_NS, "ip", "-4", "addr", "show", "dev", BRIDGE)).toContain(`inet ${GATEWAY}/24`);
    expect(cd!.exec("c1", "ip", "route").out).toMatch(new RegExp(`default via ${GATEWAY.replace(/\./g, "\\.")} dev eth0`));
    expect(inNs(HOST_NS, "cat", "/proc/sys/net/ipv4/ip_forward").trim()).toBe("1");
  });

  it("containers reach each other and the gateway", () => {
    const ip1 = containerIP("c1");
    const ip2 = containerIP("c2");
    for (const [from, to] of [["c1", ip2], ["c2", ip1], ["c1", GATEWAY], ["c2", GATEWAY]] as const) {
      const r = ping(from, to);
      expect(r.ok, `${from} -> ${to}: ${r.out}`).toBe(true);
    }
  });

  it("masquerades traffic leaving the subnet to the node's address (ipMasq)", () => {
    const ip1 = containerIP("c1");
    expect(mentions(nftTable(), ip1)).toBe(true);
    // OUT_NS has no route to the pod subnet: a reply only comes back if the node NATed.
    const set = "table ip seen {\n set src { type ipv4_addr; flags dynamic; }\n chain input {\n type filter hook input priority 0;\n icmp type echo-request add @src { ip saddr }\n }\n}\n";
    const r = spawnSync("ip", ["netns", "exec", OUT_NS, "nft", "-f", "-"], { input: set, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const p = ping("c1", OUTSIDE_IP);
    expect(p.ok, p.out).toBe(true);
    const seen = JSON.parse(inNs(OUT_NS, "nft", "-j", "list", "set", "ip", "seen", "src")) as { nftables: Array<{ set?: { elem?: string[] } }> };
    expect(seen.nftables.find((x) => x.set)?.set?.elem).toEqual([NODE_UPLINK_IP]);
  });

  it("ctr task kill: ctr calls DEL after the netns is gone, and the IP, veth and NAT entries are released", async () => {
    const ip2 = containerIP("c2");
    const veth = hostVeth("c2");
    expect(linkExists(veth)).toBe(true);
    expect(reservations().has(ip2)).toBe(true);

    const code = await cd!.kill(c2);
    expect(code, c2.output()).toBe(137); // the task's SIGKILL, after DEL and the deletes

    expect(cd!.containers()).not.toContain("c2");
    expect(reservations().has(ip2)).toBe(false);
    expect([...reservations().values()]).not.toContain(`${fullId("c2")}\r\neth0`);
    expect(linkExists(veth)).toBe(false);
    const table = nftTable();
    expect(mentions(table, ip2)).toBe(false);
    expect(table).not.toContain(fullId("c2"));
    expect(cachedResult("c2")).toBeUndefined(); // libcni drops its cache only after DEL succeeded

    // the other container is unaffected
    expect(ping("c1", GATEWAY).ok).toBe(true);
    expect(mentions(table, containerIP("c1"))).toBe(true);
  });

  it("ctr run --cni --rm: a container sees its address, and the DEL after it exited releases it", async () => {
    const h = cd!.runCni(IMAGE, "c3", ["sh", "-c", `ip -4 addr show dev eth0 && ping -c 1 -W 2 ${GATEWAY}`]);
    const code = await Promise.race([h.exited, new Promise<string>((r) => setTimeout(() => r("timeout"), 20_000))]);
    expect(code, h.output()).toBe(0);
    const ip3 = /inet (\d+\.\d+\.\d+\.\d+)\/24/.exec(h.output())?.[1];
    expect(ip3, h.output()).toBeDefined();
    expect(ip3!.startsWith(SUBNET_PREFIX)).toBe(true);

    expect(cd!.containers()).not.toContain("c3");
    expect(reservations().has(ip3!)).toBe(false);
    expect([...reservations().values()]).not.toContain(`${fullId("c3")}\r\neth0`);
    expect(mentions(nftTable(), ip3!)).toBe(false);
    expect(cachedResult("c3")).toBeUndefined();
    // only c1 is left on the bridge
    expect([...reservations().keys()]).toEqual([containerIP("c1")]);
  });
});
