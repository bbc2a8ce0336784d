// The store's flock against other processes: util-linux's flock(1), and the Go reference
// plugin itself when it is installed (Debian's containernetworking-plugins).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { allocate, check, release } from "../../../ipam/host-local/index";
import { baseEnv, cniEnv } from "../../../lab/exec";
import { REFERENCE_BIN_DIR } from "../../helpers/cni";
import { Store } from "../../../ipam/host-local/store";
import { filesOf, NET, request, useDataDir } from "./fixture";

const data = useDataDir();
const GO_HOST_LOCAL = join(REFERENCE_BIN_DIR, "host-local");

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.on("exit", (code) => resolve(code)));
}

describe("flock on <dataDir>/<network>/lock", () => {
  it("is exclusive while an operation runs", () => {
    const lock = join(data.netDir, "lock");
    const tryLock = (): number | null => spawnSync("flock", ["--nonblock", lock, "true"]).status;
    Store.withLock(data.dir, NET, () => expect(tryLock()).toBe(1));
    expect(tryLock()).toBe(0);
  });

  it("makes allocate wait for another holder", async () => {
    mkdirSync(data.netDir, { recursive: true });
    const holder = spawn("flock", [join(data.netDir, "lock"), "-c", "echo locked; sleep 1.5"], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve) => holder.stdout?.once("data", () => resolve()));
    const start = Date.now();
    allocate(request(data.dir, { subnet: "10.1.0.0/24" }, "c1"));
    // Blocked in flock(2) until the holder's sleep ended.
    expect(Date.now() - start).toBeGreaterThanOrEqual(300);
    expect(await exited(holder)).toBe(0);
  });
});

describe.skipIf(!existsSync(GO_HOST_LOCAL))("side by side with the Go host-local", () => {
  const ranges = [[{ subnet: "10.7.0.0/24" }], [{ subnet: "fd00:7::/120" }]];
  const conf = (): string =>
    JSON.stringify({ cniVersion: "1.0.0", name: NET, type: "bridge", ipam: { type: "host-local", dataDir: data.dir, ranges } });
  const env = (command: string, id: string): NodeJS.ProcessEnv => ({
    ...baseEnv(),
    ...cniEnv({ command, containerId: id, netns: "/proc/self/ns/net", path: REFERENCE_BIN_DIR }),
  });
  const goSync = (command: string, id: string) => spawnSync(GO_HOST_LOCAL, { input: conf(), env: env(command, id), encoding: "utf8" });
  const ours = (id: string) => request(data.dir, { ranges }, id);

  it("each reads, continues and releases the other's reservations", () => {
    expect(goSync("ADD", "go1").status).toBe(0);
    expect(allocate(ours("ts1")).ips.map((i) => i.address)).toEqual(["10.7.0.3/24", "fd00:7::3/120"]);
    expect(goSync("ADD", "go2").stdout).toContain("10.7.0.4/24");
    // Go's CHECK finds our reservation; ours finds Go's.
    expect(goSync("CHECK", "ts1").status).toBe(0);
    expect(() => check(ours("go1"))).not.toThrow();
    expect(release(ours("go1")).sort()).toEqual(["10.7.0.2", "fd00:7::2"]);
    expect(goSync("DEL", "ts1").status).toBe(0);
    expect(Object.keys(filesOf(data.netDir))).toEqual(["10.7.0.4", "fd00:7::4", "last_reserved_ip.0", "last_reserved_ip.1", "lock"]);
  });

  it("both allocating at once: every call succeeds with one address per family", async () => {
    const goIds = Array.from({ length: 12 }, (_, i) => `go${i}`);
    const children = goIds.map((id) => {
      const c = spawn(GO_HOST_LOCAL, { env: env("ADD", id), stdio: ["pipe", "ignore", "inherit"] });
      c.stdin?.end(conf());
      return exited(c);
    });
    for (let i = 0; i < 12; i++) allocate(ours(`ts${i}`));
    expect(await Promise.all(children)).toEqual(goIds.map(() => 0));
    const perOwner = new Map<string, number>();
    for (const [file, content] of Object.entries(filesOf(data.netDir))) {
      if (!file.startsWith("10.") && !file.startsWith("fd00")) continue;
      perOwner.set(content, (perOwner.get(content) ?? 0) + 1);
    }
    expect(perOwner.size).toBe(24);
    expect([...perOwner.values()].every((n) => n === 2)).toBe(true);
  });
});
