import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { allocate, check, gc, release } from "../../../ipam/host-local/index";
import { CniError } from "../../../shared/cni/errors";
import { cniErrorOf } from "../../helpers/cni-error";
import { filesOf, request, useDataDir } from "./fixture";

const data = useDataDir();

const V4 = { ranges: [[{ subnet: "10.1.0.0/29" }]] }; // allocatable: .2 .. .6 (.1 is the gateway)
const DUAL = { ranges: [[{ subnet: "10.1.0.0/29" }], [{ subnet: "fd00:1::/125" }]] };

const addrs = (id: string, ipam: Record<string, unknown> = V4, more = {}): string[] =>
  allocate(request(data.dir, ipam, id, more)).ips.map((i) => i.address);

describe("allocate", () => {
  it("returns address, gateway, routes and no dns by default", () => {
    const r = allocate(request(data.dir, { ...V4, routes: [{ dst: "0.0.0.0/0" }] }, "c1"));
    expect(r).toEqual({ ips: [{ address: "10.1.0.2/29", gateway: "10.1.0.1" }], routes: [{ dst: "0.0.0.0/0" }] });
  });

  it("goes round-robin across calls, skipping the gateway, and reuses only after wrapping", () => {
    expect(["a", "b", "c"].flatMap((id) => addrs(id))).toEqual(["10.1.0.2/29", "10.1.0.3/29", "10.1.0.4/29"]);
    // A released address is not handed out again until the range wraps.
    expect(release(request(data.dir, V4, "a"))).toEqual(["10.1.0.2"]);
    expect(["d", "e", "f"].flatMap((id) => addrs(id))).toEqual(["10.1.0.5/29", "10.1.0.6/29", "10.1.0.2/29"]);
  });

  it("skips the gateway wherever it sits in the range", () => {
    const ipam = { ranges: [[{ subnet: "10.1.0.0/29", gateway: "10.1.0.3" }]] };
    expect(["a", "b", "c"].flatMap((id) => addrs(id, ipam))).toEqual(["10.1.0.1/29", "10.1.0.2/29", "10.1.0.4/29"]);
  });

  it("never hands out the network or broadcast address, even when the range includes them", () => {
    const ipam = { ranges: [[{ subnet: "10.1.0.0/30", rangeStart: "10.1.0.0", rangeEnd: "10.1.0.3", gateway: "10.1.0.1" }]] };
    expect(addrs("a", ipam)).toEqual(["10.1.0.2/30"]);
    const e = cniErrorOf(() => addrs("b", ipam));
    expect(e.message).toBe("failed to allocate for range 0: no IP addresses available in range set: 10.1.0.0-10.1.0.3");
  });

  it("reports exhaustion with code 100 and the range set", () => {
    for (const id of ["a", "b", "c", "d", "e"]) addrs(id);
    const e = cniErrorOf(() => addrs("f"));
    expect(e.code).toBe(100);
    expect(e.message).toBe("failed to allocate for range 0: no IP addresses available in range set: 10.1.0.1-10.1.0.6");
  });

  it("walks ranges of a set in order and wraps to the first", () => {
    const ipam = {
      ranges: [
        [
          { subnet: "10.1.0.0/24", rangeStart: "10.1.0.10", rangeEnd: "10.1.0.11" },
          { subnet: "10.2.0.0/24", rangeStart: "10.2.0.10", rangeEnd: "10.2.0.11" },
        ],
      ],
    };
    const got = ["a", "b", "c", "d"].flatMap((id) => addrs(id, ipam));
    expect(got).toEqual(["10.1.0.10/24", "10.1.0.11/24", "10.2.0.10/24", "10.2.0.11/24"]);
    release(request(data.dir, ipam, "a"));
    const next = allocate(request(data.dir, ipam, "e")).ips[0];
    expect(next).toEqual({ address: "10.1.0.10/24", gateway: "10.1.0.1" });
  });

  it("restarts from the beginning when last_reserved_ip is outside the set", () => {
    addrs("a");
    writeFileSync(join(data.netDir, "last_reserved_ip.0"), "192.168.9.9");
    expect(addrs("b")).toEqual(["10.1.0.3/29"]);
    writeFileSync(join(data.netDir, "last_reserved_ip.0"), "garbage");
    expect(addrs("c")).toEqual(["10.1.0.4/29"]);
  });

  it("allocates one address per range set (dual stack)", () => {
    const r = allocate(request(data.dir, DUAL, "c1"));
    expect(r.ips).toEqual([
      { address: "10.1.0.2/29", gateway: "10.1.0.1" },
      { address: "fd00:1::2/125", gateway: "fd00:1::1" },
    ]);
    expect(addrs("c2", DUAL)).toEqual(["10.1.0.3/29", "fd00:1::3/125"]);
  });

  it("refuses a second allocation for the same attachment, as the reference does", () => {
    addrs("c1");
    const e = cniErrorOf(() => addrs("c1"));
    expect(e.message).toBe("failed to allocate for range 0: 10.1.0.2 has been allocated to c1, duplicate allocation is not allowed");
    // Another interface of the same container is a different attachment.
    expect(addrs("c1", V4, { ifname: "net1" })).toEqual(["10.1.0.3/29"]);
  });

  it("reads dns from resolvConf", () => {
    const path = join(data.dir, "resolv.conf");
    writeFileSync(
      path,
      "# comment\n; other comment\nnameserver 10.96.0.10\nnameserver  fd00::a \nsearch a.svc b.local\nsearch c\ndomain example.org\noptions ndots:5 edns0\nbogus line\nnameserver\n",
    );
    const r = allocate(request(data.dir, { ...V4, resolvConf: path }, "c1"));
    expect(r.dns).toEqual({
      nameservers: ["10.96.0.10", "fd00::a"],
      domain: "example.org",
      search: ["a.svc", "b.local", "c"],
      options: ["ndots:5", "edns0"],
    });
  });

  it("fails with an I/O error, reserving nothing, when resolvConf is unreadable", () => {
    const e = cniErrorOf(() => addrs("c1", { ...V4, resolvConf: join(data.dir, "missing") }));
    expect(e.code).toBe(5);
    expect(existsSync(data.netDir)).toBe(false);
  });
});

describe("requested addresses", () => {
  it("takes CNI_ARGS IP", () => {
    expect(addrs("c1", V4, { args: new Map([["IP", "10.1.0.5"]]) })).toEqual(["10.1.0.5/29"]);
    // Round-robin continues after the requested one.
    expect(addrs("c2")).toEqual(["10.1.0.6/29"]);
  });

  it("takes args.cni.ips and runtimeConfig.ips (with or without prefix), one per set", () => {
    expect(addrs("c1", DUAL, { argsCniIps: ["fd00:1::6"], runtimeConfig: { IPs: ["10.1.0.4/29"] } })).toEqual(["10.1.0.4/29", "fd00:1::6/125"]);
    expect(addrs("c2", DUAL, { args: new Map([["IP", "10.1.0.6,fd00:1::5"]]) })).toEqual(["10.1.0.6/29", "fd00:1::5/125"]);
  });

  it("fails when the requested address is taken", () => {
    addrs("c1", V4, { args: new Map([["IP", "10.1.0.5"]]) });
    const e = cniErrorOf(() => addrs("c2", V4, { args: new Map([["IP", "10.1.0.5"]]) }));
    expect(e.message).toBe("failed to allocate for range 0: requested IP address 10.1.0.5 is not available in range set 10.1.0.1-10.1.0.6");
  });

  it("fails for the gateway", () => {
    const e = cniErrorOf(() => addrs("c1", V4, { args: new Map([["IP", "10.1.0.1"]]) }));
    expect(e.message).toBe("failed to allocate for range 0: requested ip 10.1.0.1 is subnet's gateway");
  });

  it("fails, reserving nothing, for an address in no range set or two in one set", () => {
    let e = cniErrorOf(() => addrs("c1", V4, { args: new Map([["IP", "10.9.9.9"]]) }));
    expect(e.message).toBe("failed to allocate all requested IPs: 10.9.9.9");
    e = cniErrorOf(() => addrs("c1", V4, { argsCniIps: ["10.1.0.3", "10.1.0.4"] }));
    expect(e.message).toBe("failed to allocate all requested IPs: 10.1.0.4");
    expect(Object.keys(filesOf(data.netDir)).filter((f) => f.startsWith("10."))).toEqual([]);
  });

  it("reads an IPv4-mapped IPv6 address as the IPv4 address, as the reference", () => {
    expect(addrs("c1", V4, { args: new Map([["IP", "::ffff:10.1.0.5"]]) })).toEqual(["10.1.0.5/29"]);
  });

  it("refuses text that is no address", () => {
    expect(cniErrorOf(() => addrs("c1", V4, { args: new Map([["IP", "ten"]]) })).code).toBe(4);
    expect(cniErrorOf(() => addrs("c1", V4, { argsCniIps: ["10.1.0.300"] })).code).toBe(7);
    expect(cniErrorOf(() => addrs("c1", V4, { runtimeConfig: { ips: "10.1.0.3" } })).message).toBe("runtimeConfig.ips must be a list of IP addresses");
  });
});

describe("all or nothing", () => {
  it("releases the first set's address when the second set is exhausted", () => {
    const ipam = { ranges: [[{ subnet: "10.1.0.0/29" }], [{ subnet: "10.2.0.0/30" }]] }; // set 1 has one address
    addrs("c1", ipam);
    const before = filesOf(data.netDir);
    const e = cniErrorOf(() => addrs("c2", ipam));
    expect(e.message).toBe("failed to allocate for range 1: no IP addresses available in range set: 10.2.0.1-10.2.0.2");
    const after = filesOf(data.netDir);
    // Only last_reserved_ip.0 moved; no reservation for c2 is left behind.
    expect(Object.keys(after)).toEqual(Object.keys(before));
    expect(Object.values(after).some((v) => v.startsWith("c2"))).toBe(false);
  });

  it("leaves no reservation when recording the round-robin position fails", () => {
    addrs("c1", DUAL);
    release(request(data.dir, DUAL, "c1"));
    rmSync(join(data.netDir, "last_reserved_ip.1"));
    mkdirSync(join(data.netDir, "last_reserved_ip.1")); // unwritable as a file
    const e = cniErrorOf(() => addrs("c2", DUAL));
    expect(e.code).toBe(5);
    // c1 released its addresses: no address file may be left at all.
    expect(readdirSync(data.netDir).filter((f) => /^(10\.|fd00)/.test(f))).toEqual([]);
  });

  it("keeps the attachment's earlier reservations when a retried ADD fails", () => {
    addrs("c1", DUAL);
    expect(() => addrs("c1", DUAL)).toThrow(/duplicate allocation/);
    expect(release(request(data.dir, DUAL, "c1")).sort()).toEqual(["10.1.0.2", "fd00:1::2"]);
  });
});

describe("the reference's on-disk format", () => {
  it("writes exactly what the Go plugin writes", () => {
    allocate(request(data.dir, DUAL, "ctr1"));
    expect(filesOf(data.netDir)).toEqual({
      "10.1.0.2": "ctr1\r\neth0",
      "fd00:1::2": "ctr1\r\neth0",
      "last_reserved_ip.0": "10.1.0.2",
      "last_reserved_ip.1": "fd00:1::2",
      lock: "",
    });
    expect(readFileSync(join(data.netDir, "10.1.0.2"))).toEqual(Buffer.from([0x63, 0x74, 0x72, 0x31, 0x0d, 0x0a, 0x65, 0x74, 0x68, 0x30]));
  });

  it("resumes round-robin from a last_reserved_ip written by Go, and skips Go's reservations", () => {
    addrs("first");
    writeFileSync(join(data.netDir, "10.1.0.4"), "goctr\r\neth0");
    writeFileSync(join(data.netDir, "last_reserved_ip.0"), "10.1.0.3");
    expect(addrs("c1")).toEqual(["10.1.0.5/29"]);
  });

  it("releases files in both Go formats, and only the attachment's: ID-only files where no file names the interface, as Go", () => {
    addrs("seed");
    writeFileSync(join(data.netDir, "10.1.0.3"), "goctr\r\neth0");
    writeFileSync(join(data.netDir, "10.1.0.4"), "goctr"); // before CNI 0.7: ID only, maybe another interface's
    writeFileSync(join(data.netDir, "10.1.0.5"), "goctr\r\neth1");
    writeFileSync(join(data.netDir, "10.1.0.6"), "goctr2\r\neth0");
    expect(release(request(data.dir, V4, "goctr"))).toEqual(["10.1.0.3"]);
    expect(release(request(data.dir, V4, "goctr"))).toEqual(["10.1.0.4"]);
    expect(Object.keys(filesOf(data.netDir))).toEqual(["10.1.0.2", "10.1.0.5", "10.1.0.6", "last_reserved_ip.0", "lock"]);
  });
});

describe("release, check, gc", () => {
  it("release is idempotent and needs no prior ADD or directory", () => {
    expect(release(request(data.dir, V4, "nobody"))).toEqual([]);
    expect(existsSync(data.netDir)).toBe(false);
    addrs("c1", DUAL);
    expect(release(request(data.dir, DUAL, "c1"))).toHaveLength(2);
    expect(release(request(data.dir, DUAL, "c1"))).toEqual([]);
  });

  it("check passes while the reservation exists and fails after", () => {
    expect(() => check(request(data.dir, V4, "c1"))).toThrow(/failed to find address added by container c1/);
    addrs("c1");
    expect(() => check(request(data.dir, V4, "c1"))).not.toThrow();
    expect(() => check(request(data.dir, V4, "c1", { ifname: "eth1" }))).toThrow(CniError);
    writeFileSync(join(data.netDir, "10.1.0.6"), "old");
    expect(() => check(request(data.dir, V4, "old", { ifname: "anything" }))).not.toThrow();
    release(request(data.dir, V4, "c1"));
    expect(() => check(request(data.dir, V4, "c1"))).toThrow(CniError);
  });

  it("gc releases what no valid attachment holds", () => {
    const cfg = request(data.dir, V4, "x").ipam;
    expect(gc(cfg, "testnet", [])).toEqual([]);
    addrs("keep");
    addrs("drop");
    addrs("keep", V4, { ifname: "net1" });
    writeFileSync(join(data.netDir, "10.1.0.5"), "legacy"); // old format: kept while the ID is valid
    writeFileSync(join(data.netDir, "10.1.0.6"), ""); // torn by a crash: nobody's
    const released = gc(cfg, "testnet", [
      { containerID: "keep", ifname: "eth0" },
      { containerID: "legacy", ifname: "eth0" },
    ]);
    expect(released.sort()).toEqual(["10.1.0.3", "10.1.0.4", "10.1.0.6"]);
    expect(Object.keys(filesOf(data.netDir))).toEqual(["10.1.0.2", "10.1.0.5", "last_reserved_ip.0", "lock"]);
  });
});
