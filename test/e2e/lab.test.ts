// `npm run lab`'s steps (lab/run.ts), on a cluster with this test's own prefix instead of
// the lab's: what the user reads (the connectivity matrix, each node's routes and FDB),
// the exit status, and `--keep` / a second run / `--down` / a failed run leaving the host as
// it was.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { alive, Cluster, type ClusterOptions } from "../../lab/cluster";
import { netnsNames, tryInNs } from "../../lab/exec";
import { runLab, tearDownOnSignal } from "../../lab/run";
import { requireBuild } from "../helpers/cni";

const PREFIX = `wl${process.pid.toString(36)}`;

const ours = (): string[] => netnsNames(`${PREFIX}-`).sort();

describe("npm run lab", () => {
  let opts: ClusterOptions;
  let out: string[];
  const say = (line = "") => out.push(...line.split("\n"));
  /** The running cluster's agents, from the pid files the lab keeps in each node's state dir. */
  const agentPids = () => new Cluster(opts).nodes.map((n) => Number(readFileSync(join(n.stateDir, "agent.pid"), "utf8")));

  beforeEach(() => {
    requireBuild();
    opts = { prefix: PREFIX, nodes: 2, workDir: mkdtempSync(join(tmpdir(), "weft-lab-it-")) };
    out = [];
  });
  afterEach(() => {
    new Cluster(opts).destroy();
    expect(ours()).toEqual([]);
  });

  it("prints every pod reaching every other and each node's peers, exits 0 and leaves nothing", async () => {
    const cluster = new Cluster(opts);
    expect(await runLab(cluster, [], say), out.join("\n")).toBe(0);

    const rows = out.filter((l) => /^pod\d@node\d /.test(l));
    expect(rows).toHaveLength(4);
    for (const row of rows) expect(row.match(/ ok\b/g), row).toHaveLength(3);
    expect(out).toContain("all pods reach each other");
    // Under each node's heading: a route to the other's pod CIDR and an FDB entry to its IP.
    for (const [i, n] of cluster.nodes.entries()) {
      const peer = cluster.nodes[1 - i]!;
      const from = out.findIndex((l) => l.startsWith(`${n.name} (${n.ip}, pods ${n.podCIDR})`));
      expect(from, out.join("\n")).toBeGreaterThanOrEqual(0);
      const section = out.slice(from + 1, from + 3);
      expect(section.some((l) => l.startsWith(`  route ${peer.podCIDR} `) && l.includes("dev weft.1"))).toBe(true);
      expect(section.some((l) => l.startsWith("  fdb ") && l.endsWith(`-> ${peer.ip}`))).toBe(true);
    }
    expect(ours()).toEqual([]);
    expect(existsSync(opts.workDir)).toBe(false); // agent logs, pid files, IPAM state
  });

  it("--keep leaves the cluster up, a second run replaces it, --down removes it", async () => {
    expect(await runLab(new Cluster(opts), ["--keep"], say), out.join("\n")).toBe(0);
    expect(out.some((l) => l.includes("remove with: npm run lab -- --down"))).toBe(true);
    const kept = ours();
    expect(kept).toHaveLength(7); // the switch, two nodes, four pods
    const agents = agentPids();
    for (const pid of agents) expect(alive(pid)).toBe(true);

    // What a user does next: run the lab again (a new process), then take it down.
    out = [];
    expect(await runLab(new Cluster(opts), ["--keep"], say), out.join("\n")).toBe(0);
    expect(out).toContain("all pods reach each other");
    for (const pid of agents) expect(alive(pid)).toBe(false);
    expect(ours()).toHaveLength(7);
    // Still up after the run: pod1 (node1) reaches pod3 (node2) at the address the matrix shows.
    const pod3 = out.find((l) => l.startsWith("pod3@node2 "))!.split(/\s+/)[1]!;
    expect(tryInNs(`${PREFIX}-pod1`, "ping", "-c", "1", "-W", "2", pod3)).toBe(true);

    const second = agentPids();
    for (const pid of second) expect(alive(pid)).toBe(true);

    out = [];
    expect(await runLab(new Cluster(opts), ["--down"], say)).toBe(0);
    expect(out).toEqual(["weft lab: removed"]);
    expect(ours()).toEqual([]);
    for (const pid of second) expect(alive(pid)).toBe(false);
    expect(existsSync(opts.workDir)).toBe(false);
  });

  it("Ctrl-C (or SIGTERM) takes a running lab down, agents and all, unless --keep", async () => {
    const before = { SIGINT: process.listeners("SIGINT"), SIGTERM: process.listeners("SIGTERM") };
    // The handlers each phase installs go after it: this process is the test runner.
    const dropOurs = () => {
      for (const sig of ["SIGINT", "SIGTERM"] as const) {
        for (const l of process.listeners(sig)) if (!before[sig].includes(l)) process.removeListener(sig, l);
      }
    };
    const exits: number[] = [];
    try {
      expect(await runLab(new Cluster(opts), ["--keep"], say), out.join("\n")).toBe(0);
      const agents = agentPids();
      tearDownOnSignal(new Cluster(opts), [], say, (code) => exits.push(code));
      process.emit("SIGINT");
      expect(exits).toEqual([130]);
      expect(out).toContain("weft lab: SIGINT, tearing down");
      expect(ours()).toEqual([]);
      for (const pid of agents) expect(alive(pid)).toBe(false);
      expect(existsSync(opts.workDir)).toBe(false);
      dropOurs();

      expect(await runLab(new Cluster(opts), ["--keep"], say), out.join("\n")).toBe(0);
      tearDownOnSignal(new Cluster(opts), ["--keep"], say, (code) => exits.push(code));
      process.emit("SIGTERM");
      expect(exits).toEqual([130, 143]);
      expect(ours()).toHaveLength(7);
    } finally {
      dropOurs();
    }
  });

  it("--down signals only a process that is the node's agent: a pid file left from before a reboot names anybody", () => {
    const other = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      const n = new Cluster(opts).nodes[0]!;
      mkdirSync(n.stateDir, { recursive: true });
      writeFileSync(join(n.stateDir, "agent.pid"), String(other.pid));
      new Cluster(opts).destroy();
      expect(alive(other.pid!)).toBe(true);
      expect(existsSync(opts.workDir)).toBe(false);
    } finally {
      other.kill("SIGKILL");
    }
  });

  it("a run that fails reports its own error, even when the teardown fails too, and leaves nothing", async () => {
    // Failures injected after the real steps: the cluster is up when the run fails.
    let agents: number[] = [];
    class Failing extends Cluster {
      override async up(): Promise<void> {
        await super.up();
        agents = agentPids();
        throw new Error("injected: bring-up failed");
      }
      override destroy(): void {
        super.destroy();
        throw new Error("injected: teardown failed");
      }
    }
    await expect(runLab(new Failing(opts), [], say)).rejects.toThrow("injected: bring-up failed");
    expect(out).toContain("weft lab: could not tear down after a failure: injected: teardown failed");
    expect(agents).toHaveLength(2);
    for (const pid of agents) expect(alive(pid)).toBe(false);
    expect(ours()).toEqual([]);
    expect(existsSync(opts.workDir)).toBe(false);
  });
});
