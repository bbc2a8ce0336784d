import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileNodeSource, parseNodesFile } from "../../../agent/file-source";
import type { NodeSnapshot } from "../../../agent/types";

const doc = (nodes: unknown[], clusterCIDR = "10.244.0.0/16") => JSON.stringify({ clusterCIDR, nodes });
const n1 = { name: "n1", ip: "192.168.50.11", podCIDR: "10.244.1.0/24" };
const n2 = { name: "n2", ip: "192.168.50.12", podCIDR: "10.244.2.0/24" };

describe("parseNodesFile", () => {
  it("reads the cluster CIDR and the nodes", () => {
    expect(parseNodesFile(doc([n1, n2]))).toEqual({ clusterCIDR: "10.244.0.0/16", nodes: [n1, n2] });
    expect(parseNodesFile(doc([]))).toEqual({ clusterCIDR: "10.244.0.0/16", nodes: [] });
  });

  it("ignores unknown keys", () => {
    expect(parseNodesFile(JSON.stringify({ clusterCIDR: "10.0.0.0/8", x: 1, nodes: [{ ...n1, role: "worker" }] })).nodes).toEqual([n1]);
  });

  it("says what is wrong", () => {
    const err = (text: string) => () => parseNodesFile(text);
    expect(err('{"clusterCIDR": "10.2')).toThrow(/not valid JSON/);
    expect(err("[]")).toThrow(/JSON object/);
    expect(err(JSON.stringify({ nodes: [] }))).toThrow(/clusterCIDR must be a string/);
    expect(err(doc([], "10.244.0.0"))).toThrow(/clusterCIDR "10.244.0.0" is not an IPv4 CIDR/);
    expect(err(JSON.stringify({ clusterCIDR: "10.0.0.0/8" }))).toThrow(/"nodes" must be an array/);
    expect(err(doc([{ ...n1, name: "" }]))).toThrow(/nodes\[0\]\.name/);
    expect(err(doc([{ ...n1, ip: "fd00::1" }]))).toThrow(/nodes\[0\] \(n1\): ip must be an IPv4 address/);
    expect(err(doc([n1, { ...n2, podCIDR: "10.244.2.0" }]))).toThrow(/nodes\[1\] \(n2\): podCIDR/);
    expect(err(doc([n1, n1]))).toThrow(/listed twice/);
  });
});

describe("FileNodeSource", () => {
  let dir: string;
  let file: string;
  let source: FileNodeSource | null;
  let seen: NodeSnapshot[];
  let errors: string[];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "weft-nodes-"));
    file = join(dir, "nodes.json");
    seen = [];
    errors = [];
    source = null;
  });
  afterEach(() => {
    source?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function start(o: { pollMs?: number; watch?: boolean } = {}): void {
    source = new FileNodeSource(file, o);
    source.start(
      (s) => seen.push(s),
      (e) => errors.push(e),
    );
  }

  async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; seen ${JSON.stringify(seen)}, errors ${JSON.stringify(errors)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  const names = () => seen.map((s) => s.nodes.map((n) => n.name).join(","));

  it("reports the list at start and again after every change, through fs.watch", async () => {
    writeFileSync(file, doc([n1]));
    start({ pollMs: 60_000 }); // no stat fallback within the test: changes arrive via fs.watch
    expect(names()).toEqual(["n1"]);
    writeFileSync(file, doc([n1, n2]));
    await until("n1,n2", () => names().length === 2);
    // Replaced by rename, as careful writers do.
    writeFileSync(join(dir, ".tmp"), doc([n2]));
    renameSync(join(dir, ".tmp"), file);
    await until("n2", () => names().length === 3);
    expect(names()).toEqual(["n1", "n1,n2", "n2"]);
  });

  it("does not report an unchanged list (same content rewritten, or only formatting)", async () => {
    writeFileSync(file, doc([n1]));
    start({ pollMs: 50 });
    writeFileSync(file, doc([n1]));
    writeFileSync(file, JSON.stringify(JSON.parse(doc([n1])), null, 2));
    writeFileSync(file, doc([n1, n2]));
    await until("n1,n2", () => names().length === 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(names()).toEqual(["n1", "n1,n2"]);
  });

  it("ignores content that does not parse, logs it once, and keeps the last list", async () => {
    writeFileSync(file, doc([n1]));
    start({ pollMs: 50 });
    writeFileSync(file, '{"clusterCIDR": "10.244.0.0/16", "nodes": [{"na'); // a writer caught mid-write
    await until("an error", () => errors.length === 1);
    expect(errors[0]).toMatch(/nodes\.json: not valid JSON .*; ignored, keeping the last node list$/);
    await new Promise((r) => setTimeout(r, 200));
    expect(errors).toHaveLength(1);
    writeFileSync(file, doc([n1, n2]));
    await until("n1,n2", () => names().length === 2);
    expect(names()).toEqual(["n1", "n1,n2"]);
  });

  it("waits for a file that does not exist yet", async () => {
    start({ pollMs: 50 });
    expect(seen).toEqual([]);
    expect(errors[0]).toMatch(/ENOENT; keeping the last node list/);
    writeFileSync(file, doc([n2]));
    await until("n2", () => names().length === 1);
  });

  it("notices changes through the stat fallback alone", async () => {
    writeFileSync(file, doc([n1]));
    start({ pollMs: 50, watch: false });
    writeFileSync(file, doc([n1, n2]));
    await until("n1,n2", () => names().length === 2);
  });

  it("follows a directory created after start", async () => {
    file = join(dir, "later", "nodes.json");
    start({ pollMs: 50 });
    mkdirSync(join(dir, "later"));
    writeFileSync(file, doc([n1]));
    await until("n1", () => names().length === 1);
  });
});
