// host-local, compiled, against the Go reference on one dataDir, and under concurrency.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { cni, cniAsync, REFERENCE_BIN_DIR, requireBuild } from "../helpers/cni";
import { addressOf } from "../../shared/ip";

let dataDir: string;

beforeEach(() => {
  requireBuild();
  dataDir = mkdtempSync(join(tmpdir(), "weft-hl-"));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

function conf(subnet: string, extra: Record<string, unknown> = {}) {
  return { cniVersion: "1.0.0", name: "shared", type: "host-local", ipam: { type: "host-local", dataDir, ranges: [[{ subnet, ...extra }]] } };
}

function ipamCall(impl: "weft" | "go", command: "ADD" | "DEL", id: string, c: Record<string, unknown>) {
  return cni({
    plugin: "host-local",
    command,
    conf: c["ipam"] ? c : c,
    containerId: id,
    netns: "/proc/self/ns/net",
    ifname: "eth0",
    ...(impl === "go" ? { binDir: REFERENCE_BIN_DIR } : {}),
  });
}

function held(): string[] {
  return readdirSync(join(dataDir, "shared")).filter((f) => f !== "lock" && !f.startsWith("last_reserved"));
}

describe("host-local beside the Go reference", () => {
  beforeAll(() => {
    if (!existsSync(join(REFERENCE_BIN_DIR, "host-local"))) throw new Error("Debian containernetworking-plugins missing");
  });

  it("interleaves allocations on one dataDir with no duplicate, each releasing the other's", () => {
    const c = conf("10.88.0.0/28");
    const got = new Map<string, string>();
    for (let i = 0; i < 10; i++) {
      const impl = i % 2 === 0 ? "weft" : "go";
      const r = ipamCall(impl, "ADD", `ctr${i}`, c);
      expect(r.code, `${impl}: ${r.stdout}`).toBe(0);
      const ip = r.json!["ips"][0].address as string;
      expect([...got.values()]).not.toContain(ip);
      got.set(`ctr${i}`, ip);
    }
    expect(held()).toHaveLength(10);
    // Our reservation files are byte-for-byte the reference's format.
    const file = readFileSync(join(dataDir, "shared", addressOf(got.get("ctr0")!)), "utf8");
    expect(file).toBe("ctr0\r\neth0");

    // Each releases the other's reservations.
    for (let i = 0; i < 10; i++) {
      const impl = i % 2 === 0 ? "go" : "weft";
      expect(ipamCall(impl, "DEL", `ctr${i}`, c).code).toBe(0);
    }
    expect(held()).toEqual([]);
  });

  it("accepts what the Go plugin accepts: ipam's \"Type\" in any case, a gateway outside the subnet, top-level range fields beside ranges", () => {
    const c = { cniVersion: "1.0.0", name: "shared", type: "host-local", ipam: { Type: "host-local", dataDir, rangeStart: "10.91.0.9", ranges: [[{ subnet: "10.91.0.0/28", gateway: "10.90.0.1" }]] } };
    for (const [i, impl] of (["weft", "go"] as const).entries()) {
      const r = ipamCall(impl, "ADD", `odd${i}`, c);
      expect(r.code, `${impl}: ${r.stdout}`).toBe(0);
      expect(r.json!["ips"], impl).toEqual([{ address: `10.91.0.${i + 1}/28`, gateway: "10.90.0.1" }]);
    }
    for (const [i, impl] of (["go", "weft"] as const).entries()) expect(ipamCall(impl, "DEL", `odd${i}`, c).code).toBe(0);
    expect(held()).toEqual([]);
  });

  it("takes a network's every range from runtimeConfig.ipRanges, as the reference does", () => {
    // No ranges in the config: the runtime gives them.
    const c = { cniVersion: "1.0.0", name: "shared", type: "host-local", ipam: { type: "host-local", dataDir }, runtimeConfig: { ipRanges: [[{ subnet: "10.90.0.0/28" }]] } };
    for (const [i, impl] of (["weft", "go"] as const).entries()) {
      const r = ipamCall(impl, "ADD", `rt${i}`, c);
      expect(r.code, `${impl}: ${r.stdout}`).toBe(0);
      expect(r.json!["ips"], impl).toEqual([{ address: `10.90.0.${i + 2}/28`, gateway: "10.90.0.1" }]);
    }
    expect(held().sort()).toEqual(["10.90.0.2", "10.90.0.3"]);
    for (const [i, impl] of (["go", "weft"] as const).entries()) expect(ipamCall(impl, "DEL", `rt${i}`, c).code).toBe(0);
    expect(held()).toEqual([]);
  });

  it("reads args.cni.ips written with Go's case-insensitive keys (\"CNI\": {\"IPs\": …}) as the reference does", () => {
    const base = conf("10.91.0.0/28");
    for (const [impl, ip] of [["weft", "10.91.0.5"], ["go", "10.91.0.6"]] as const) {
      const r = ipamCall(impl, "ADD", `ci-${impl}`, { ...base, args: { CNI: { IPs: [ip] } } });
      expect(r.code, `${impl}: ${r.stdout}`).toBe(0);
      expect(r.json!["ips"][0].address, impl).toBe(`${ip}/28`);
    }
    for (const impl of ["weft", "go"] as const) expect(ipamCall(impl, "DEL", `ci-${impl}`, base).code).toBe(0);
    expect(held()).toEqual([]);
  });
});

describe("host-local under concurrency", () => {
  it("gives 50 concurrent ADDs on a /26 50 distinct addresses", async () => {
    const c = conf("10.89.0.0/26");
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        cniAsync({ plugin: "host-local", command: "ADD", conf: c, containerId: `c${i}`, netns: "/proc/self/ns/net" }),
      ),
    );
    const ips = replies.map((r) => {
      expect(r.code, r.stdout).toBe(0);
      return r.json!["ips"][0].address as string;
    });
    expect(new Set(ips).size).toBe(50);
    expect(held().sort()).toEqual(ips.map(addressOf).sort());
  });

  it("overflow gets a clean 'no addresses' error, never a duplicate or a corrupt file", async () => {
    const c = conf("10.89.1.0/26", { rangeStart: "10.89.1.10", rangeEnd: "10.89.1.39" }); // 30 addresses
    const replies = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        cniAsync({ plugin: "host-local", command: "ADD", conf: c, containerId: `c${i}`, netns: "/proc/self/ns/net" }),
      ),
    );
    const ok = replies.filter((r) => r.code === 0);
    const failed = replies.filter((r) => r.code !== 0);
    expect(ok).toHaveLength(30);
    expect(new Set(ok.map((r) => r.json!["ips"][0].address)).size).toBe(30);
    for (const r of failed) expect(r.json!["msg"]).toMatch(/no IP addresses available/);
    for (const f of held()) {
      expect(readFileSync(join(dataDir, "shared", f), "utf8")).toMatch(/^c\d+\r\neth0$/);
    }
  });
});
