// The Kubernetes node source against the API protocol: a fake API server (node:http on
// 127.0.0.1) that serves paginated LIST /api/v1/nodes and WATCH streams the test drives
// event by event, drops connections, and answers with 410 Gone in both of its forms.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KubeNodeSource, nodeInfoFromObject } from "../../../agent/kube-source";
import type { NodeSnapshot } from "../../../agent/types";

interface NodeObj {
  metadata: { name: string; resourceVersion: string };
  spec: { podCIDR?: string; podCIDRs?: string[] };
  status: { addresses: Array<{ type: string; address: string }> };
}

function nodeObj(name: string, ip: string, podCIDR: string, rv: number): NodeObj {
  return {
    metadata: { name, resourceVersion: String(rv) },
    spec: podCIDR ? { podCIDR, podCIDRs: [podCIDR] } : {},
    status: { addresses: [{ type: "Hostname", address: name }, { type: "InternalIP", address: ip }] },
  };
}

interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  auth: string | undefined;
}

/** Just enough of kube-apiserver for nodes: LIST with limit/continue, WATCH from a version. */
class FakeApiServer {
  readonly nodes = new Map<string, NodeObj>();
  rv = 100;
  readonly requests: Recorded[] = [];
  readonly watches: Array<{ res: ServerResponse; query: Record<string, string> }> = [];
  /** answer the next this-many watch requests with HTTP 410 */
  goneOnWatch = 0;
  /** answer every watch request with an ERROR event at once (a failing watch cache) */
  errorOnWatch = false;
  private server: Server | null = null;
  port = 0;

  async start(port = 0): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(port, "127.0.0.1", r));
    this.port = (this.server!.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    for (const w of this.watches) w.res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
    this.server = null;
  }

  set(name: string, ip: string, podCIDR: string): NodeObj {
    const o = nodeObj(name, ip, podCIDR, ++this.rv);
    this.nodes.set(name, o);
    return o;
  }

  /** The watch the source currently holds open. */
  get live(): { res: ServerResponse; query: Record<string, string> } | undefined {
    return this.watches.filter((w) => !w.res.destroyed && !w.res.writableEnded).at(-1);
  }

  send(type: string, object: unknown): void {
    const w = this.live;
    if (!w) throw new Error("no open watch");
    w.res.write(`${JSON.stringify({ type, object })}\n`);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://x");
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ method: req.method ?? "", path: url.pathname, query, auth: req.headers.authorization });
    if (req.method !== "GET" || url.pathname !== "/api/v1/nodes") {
      res.writeHead(403, { "content-type": "application/json" }).end('{"kind":"Status","code":403}');
      return;
    }
    if (query["watch"] === "true") {
      if (this.goneOnWatch > 0) {
        this.goneOnWatch--;
        res.writeHead(410, { "content-type": "application/json" });
        res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410 }));
        return;
      }
      res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
      if (this.errorOnWatch) {
        res.end(`${JSON.stringify({ type: "ERROR", object: { kind: "Status", status: "Failure", message: "internal error", code: 500 } })}\n`);
        return;
      }
      res.flushHeaders();
      this.watches.push({ res, query });
      return;
    }
    // LIST, paginated: the continue token is the index of the next item.
    const all = [...this.nodes.values()].sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    const from = Number(query["continue"] ?? "0");
    const limit = Number(query["limit"] ?? "0") || all.length;
    const items = all.slice(from, from + limit);
    const next = from + limit < all.length ? String(from + limit) : undefined;
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({
        kind: "NodeList",
        apiVersion: "v1",
        metadata: { resourceVersion: String(this.rv), ...(next ? { continue: next } : {}) },
        items,
      }),
    );
  }
}

describe("nodeInfoFromObject", () => {
  it("takes the first IPv4 pod CIDR and the first IPv4 InternalIP", () => {
    expect(
      nodeInfoFromObject({
        metadata: { name: "n1" },
        spec: { podCIDR: "fd00:10:244:1::/64", podCIDRs: ["fd00:10:244:1::/64", "10.244.1.0/24"] },
        status: {
          addresses: [
            { type: "ExternalIP", address: "203.0.113.9" },
            { type: "InternalIP", address: "fd00::11" },
            { type: "InternalIP", address: "172.18.0.3" },
          ],
        },
      }),
    ).toEqual({ name: "n1", ip: "172.18.0.3", podCIDR: "10.244.1.0/24" });
  });

  it("carries when the node was made, from a LIST's Date or a WATCH's string", () => {
    const at = "2026-01-02T03:04:05Z";
    const from = (creationTimestamp: unknown) => nodeInfoFromObject({ metadata: { name: "n1", creationTimestamp } } as never)?.created;
    expect([from(new Date(at)), from(at), from("not a time"), from(undefined)]).toEqual(["2026-01-02T03:04:05.000Z", "2026-01-02T03:04:05.000Z", undefined, undefined]);
  });

  it("falls back to spec.podCIDR, and leaves what is not there yet empty", () => {
    expect(nodeInfoFromObject({ metadata: { name: "n2" }, spec: { podCIDR: "10.244.2.0/24" } })).toEqual({ name: "n2", ip: "", podCIDR: "10.244.2.0/24" });
    expect(nodeInfoFromObject({ metadata: { name: "n3" } })).toEqual({ name: "n3", ip: "", podCIDR: "" });
    // IPv6 only: given as is, for the agent to say it is not IPv4 (not "no pod CIDR yet").
    const v6 = { metadata: { name: "n4" }, spec: { podCIDRs: ["fd00:10:244:4::/64"] }, status: { addresses: [{ type: "InternalIP", address: "fd00::4" }] } };
    expect(nodeInfoFromObject(v6)).toEqual({ name: "n4", ip: "fd00::4", podCIDR: "fd00:10:244:4::/64" });
    expect(nodeInfoFromObject({ metadata: {} })).toBeNull();
  });
});

describe("KubeNodeSource", () => {
  let api: FakeApiServer;
  let dir: string;
  let source: KubeNodeSource | null = null;
  let snaps: NodeSnapshot[];
  let errors: string[];

  function writeKubeconfig(port: number): void {
    writeFileSync(
      join(dir, "kubeconfig"),
      `apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}
users:
- name: agent
  user: {token: sekret}
contexts:
- name: fake
  context: {cluster: fake, user: agent}
current-context: fake
`,
    );
  }

  beforeEach(async () => {
    api = new FakeApiServer();
    await api.start();
    dir = mkdtempSync(join(tmpdir(), "weft-kube-"));
    writeKubeconfig(api.port);
    snaps = [];
    errors = [];
  });

  afterEach(async () => {
    source?.stop();
    await source?.done;
    source = null;
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function start(idleSeconds?: number): void {
    source = new KubeNodeSource({
      clusterCIDR: "10.244.0.0/16",
      kubeconfig: join(dir, "kubeconfig"),
      pageSize: 2,
      watchTimeoutSeconds: () => 30,
      backoffMs: { initial: 20, max: 100 },
      ...(idleSeconds ? { idleSeconds } : {}),
    });
    source.start(
      (s) => snaps.push(s),
      (e) => errors.push(e),
    );
  }

  async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) {
        throw new Error(`timed out waiting for ${what}; last ${JSON.stringify(snaps.at(-1))}; errors ${JSON.stringify(errors)}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  const latest = () => (snaps.at(-1)?.nodes ?? []).map((n) => `${n.name}=${n.ip},${n.podCIDR}`);
  const watchCount = () => api.requests.filter((r) => r.query["watch"] === "true").length;
  const listCount = () => api.requests.filter((r) => r.query["watch"] === undefined && r.query["continue"] === undefined).length;

  it("lists, watches, resumes after a dropped watch, and relists after 410 Gone", async () => {
    api.set("n1", "192.168.50.11", "10.244.1.0/24");
    api.set("n2", "192.168.50.12", "10.244.2.0/24");
    api.set("n3", "192.168.50.13", "10.244.3.0/24");

    // 1. LIST (two pages of two) then WATCH from the list's resourceVersion, with bookmarks.
    start();
    await until("the initial list", () => snaps.length === 1);
    expect(latest()).toEqual(["n1=192.168.50.11,10.244.1.0/24", "n2=192.168.50.12,10.244.2.0/24", "n3=192.168.50.13,10.244.3.0/24"]);
    expect(snaps[0]!.clusterCIDR).toBe("10.244.0.0/16");
    expect(api.requests.slice(0, 2).map((r) => r.query)).toEqual([{ limit: "2" }, { limit: "2", continue: "2" }]);
    await until("a watch", () => api.live !== undefined);
    expect(api.live!.query).toMatchObject({ watch: "true", resourceVersion: "103", allowWatchBookmarks: "true", timeoutSeconds: "30" });

    // 2. Events: ADDED, MODIFIED (pod CIDR assigned later), DELETED, and a BOOKMARK.
    api.send("ADDED", api.set("n4", "192.168.50.14", ""));
    await until("n4", () => latest().length === 4);
    expect(latest()[3]).toBe("n4=192.168.50.14,");
    api.send("MODIFIED", api.set("n4", "192.168.50.14", "10.244.4.0/24"));
    await until("n4's CIDR", () => latest()[3] === "n4=192.168.50.14,10.244.4.0/24");
    // A status-only update (same address and CIDR) changes nothing the overlay sees: no report.
    const before = snaps.length;
    api.send("MODIFIED", api.set("n4", "192.168.50.14", "10.244.4.0/24"));
    const n1 = api.nodes.get("n1")!;
    api.nodes.delete("n1");
    api.send("DELETED", { ...n1, metadata: { ...n1.metadata, resourceVersion: String(++api.rv) } });
    await until("n1 gone", () => latest().length === 3);
    expect(snaps.length).toBe(before + 1);
    api.rv = 200;
    api.send("BOOKMARK", { kind: "Node", apiVersion: "v1", metadata: { resourceVersion: "200" } });
    await new Promise((r) => setTimeout(r, 50));

    // 3. The connection drops mid-stream: the source reconnects from the bookmark's version.
    const watches = watchCount();
    api.live!.res.destroy();
    await until("a new watch", () => watchCount() === watches + 1 && api.live !== undefined);
    expect(api.live!.query["resourceVersion"]).toBe("200");
    expect(listCount()).toBe(1); // resumed, not relisted
    api.send("ADDED", api.set("n5", "192.168.50.15", "10.244.5.0/24"));
    await until("n5", () => latest().includes("n5=192.168.50.15,10.244.5.0/24"));

    // 4. The server ends the watch cleanly (its timeout): resume at once, still no LIST.
    api.live!.res.end();
    await until("a resumed watch", () => watchCount() === watches + 2 && api.live !== undefined);
    expect(api.live!.query["resourceVersion"]).toBe("201");
    expect(listCount()).toBe(1);

    // 5. An ERROR event with code 410: the version is too old. Meanwhile the cluster changed
    //    in ways the watch never reported; the relist must bring exactly the server's state.
    api.nodes.delete("n2");
    api.set("n6", "192.168.50.16", "10.244.6.0/24");
    api.send("ERROR", { kind: "Status", apiVersion: "v1", status: "Failure", message: "too old resource version: 150 (201)", reason: "Expired", code: 410 });
    await until("the relist", () => listCount() === 2 && latest().includes("n6=192.168.50.16,10.244.6.0/24"));
    expect(latest().map((x) => x.split("=")[0])).toEqual(["n3", "n4", "n5", "n6"]);
    expect(errors.some((e) => /410 Gone/.test(e))).toBe(true);
    await until("a watch after the relist", () => api.live?.query["resourceVersion"] === String(api.rv));

    // 6. A watch request answered with HTTP 410 itself: relist again.
    api.goneOnWatch = 1;
    api.set("n7", "192.168.50.17", "10.244.7.0/24");
    api.live!.res.end();
    await until("the second relist", () => listCount() === 3 && latest().includes("n7=192.168.50.17,10.244.7.0/24"));
    await until("a watch after the second relist", () => api.live?.query["resourceVersion"] === String(api.rv));

    // 7. Any other ERROR event (a 504 "too large resource version" after an etcd restore,
    //    say): retrying the watch would fail the same way, so relist too.
    api.set("n8", "192.168.50.18", "10.244.8.0/24");
    api.send("ERROR", { kind: "Status", apiVersion: "v1", status: "Failure", message: "Too large resource version", reason: "Timeout", code: 504 });
    await until("the third relist", () => listCount() === 4 && latest().includes("n8=192.168.50.18,10.244.8.0/24"));
    expect(errors.some((e) => /watch error 504: Too large resource version; relisting/.test(e))).toBe(true);

    // 8. A server that fails every watch at once: relisted after a wait that grows (20, 40,
    //    80, 100, 100 ms here), not in a tight loop.
    await until("a watch after the third relist", () => api.live !== undefined);
    api.errorOnWatch = true;
    const lists = listCount();
    const since = Date.now();
    api.live!.res.end();
    await until("three relists", () => listCount() - lists >= 3);
    // The first three waits alone are 20 + 40 + 80 ms (less a timer's rounding); a tight
    // loop would take a few.
    expect(Date.now() - since).toBeGreaterThanOrEqual(130);
    // Then 100 ms each: no more than five relists in half a second (one more at its edge).
    const after = listCount();
    await new Promise((r) => setTimeout(r, 500));
    expect(listCount() - after).toBeLessThanOrEqual(6);
    api.errorOnWatch = false;
    await until("a watch again", () => api.live !== undefined);

    // RBAC: only list/watch on nodes, i.e. GET /api/v1/nodes (never /api/v1/nodes/<name>), authenticated.
    expect(new Set(api.requests.map((r) => `${r.method} ${r.path}`))).toEqual(new Set(["GET /api/v1/nodes"]));
    expect(new Set(api.requests.map((r) => r.auth))).toEqual(new Set(["Bearer sekret"]));
  });

  it("takes a watch silent for longer than its idle limit for dead, long before the server's timeout, and watches again", async () => {
    api.set("n1", "192.168.50.11", "10.244.1.0/24");
    start(0.3); // the server's timeout is 30 s here
    await until("a watch", () => api.live !== undefined);
    const first = watchCount();
    await until("a new watch", () => watchCount() === first + 1, 2000);
    expect(errors.some((e) => /watch silent for 0\.3 s; reconnecting/.test(e))).toBe(true);
    expect(listCount()).toBe(1); // resumed from its version, no relist
  });

  it("keeps retrying while the API server is unreachable, then lists", async () => {
    api.set("n1", "192.168.50.11", "10.244.1.0/24");
    const port = api.port;
    await api.stop();
    start();
    await until("two failed lists", () => errors.filter((e) => /list nodes failed/.test(e)).length >= 2);
    expect(snaps).toEqual([]);
    // The server comes back on the same port.
    api = new FakeApiServer();
    api.set("n1", "192.168.50.11", "10.244.1.0/24");
    await api.start(port);
    await until("the list", () => snaps.length === 1);
    expect(latest()).toEqual(["n1=192.168.50.11,10.244.1.0/24"]);
  });
});
