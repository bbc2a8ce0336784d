// `--nodes kubernetes`: Node objects from the API server, the way an informer gets them:
// LIST (paginated) for a consistent snapshot and its resourceVersion, then WATCH from that
// version with bookmarks, so a reconnect resumes where it stopped instead of relisting.
//
//   - the server ends a watch after timeoutSeconds (randomised, as client-go does): reconnect
//     at once from the last resourceVersion;
//   - a watch that drops or fails: reconnect with exponential backoff (reset by any event);
//   - a watch that stays silent longer than the server's own timeout plus a margin (a dead
//     TCP connection): abort it and reconnect;
//   - 410 Gone, as the HTTP status of the watch request or as an ERROR event: the version
//     is too old, relist.
//
// API use is exactly: list nodes, watch nodes (RBAC: nodes list/watch; never a get of one node).
import { CoreV1Api, KubeConfig, Watch, type V1Node } from "@kubernetes/client-node";
import { parseCIDR, parseIP } from "../shared/ip";
import type { NodeInfo, NodeSnapshot, NodeSource } from "./types";

/**
 * A Node object as NodeInfo: first IPv4 pod CIDR (spec.podCIDRs, else spec.podCIDR) and
 * first IPv4 InternalIP. The overlay is IPv4 only: a node with only IPv6 ones gives its
 * first, so that the agent says why it leaves the node out rather than wait for an IPv4 one.
 */
export function nodeInfoFromObject(o: V1Node): NodeInfo | null {
  const name = o.metadata?.name;
  if (!name) return null;
  const spec = o.spec ?? {};
  const cidrs = spec.podCIDRs && spec.podCIDRs.length > 0 ? spec.podCIDRs : spec.podCIDR ? [spec.podCIDR] : [];
  const podCIDR = cidrs.find((c) => parseCIDR(c)?.ip.family === 4) ?? cidrs[0] ?? "";
  const ips = (o.status?.addresses ?? []).filter((a) => a.type === "InternalIP").map((a) => a.address);
  const ip = ips.find((a) => parseIP(a)?.family === 4) ?? ips[0] ?? "";
  // A Date from a LIST (the client's models), a string from a WATCH (raw JSON).
  const t = o.metadata?.creationTimestamp as Date | string | undefined;
  const when = t === undefined ? NaN : new Date(t).getTime();
  return Number.isNaN(when) ? { name, ip, podCIDR } : { name, ip, podCIDR, created: new Date(when).toISOString() };
}

export interface KubeSourceOptions {
  clusterCIDR: string;
  /** kubeconfig file; without it: in-cluster config when KUBERNETES_SERVICE_HOST is set, else the default ($KUBECONFIG, ~/.kube/config) */
  kubeconfig?: string;
  /** a ready KubeConfig (tests) */
  kubeConfig?: KubeConfig;
  /** LIST page size (default 500) */
  pageSize?: number;
  /** the watch's timeoutSeconds (default: random 300–600, as client-go) */
  watchTimeoutSeconds?: () => number;
  /** reconnect backoff after a failure (default 1 s doubling to 30 s) */
  backoffMs?: { initial: number; max: number };
  /** how long a watch may stay silent before it is taken for dead (default 150 s; tests) */
  idleSeconds?: number;
}

type WatchEnd = "relist" | "error" | "reconnect" | "failed" | "stopped";

/** Status code of an error from the client: HTTP status (`code` or `statusCode`), or a Status object's `code`. */
function statusOf(e: unknown): number | undefined {
  if (typeof e !== "object" || e === null) return undefined;
  const x = e as { code?: unknown; statusCode?: unknown };
  if (typeof x.statusCode === "number") return x.statusCode;
  if (typeof x.code === "number") return x.code;
  return undefined;
}

function describe(e: unknown): string {
  const status = statusOf(e);
  const msg = e instanceof Error ? e.message.split("\n")[0]! : String(e);
  return status ? `HTTP ${status}: ${msg}` : msg;
}

export function loadKubeConfig(o: Pick<KubeSourceOptions, "kubeconfig">): KubeConfig {
  const kc = new KubeConfig();
  if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
  else if (process.env["KUBERNETES_SERVICE_HOST"]) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

export class KubeNodeSource implements NodeSource {
  private readonly nodes = new Map<string, NodeInfo>();
  private resourceVersion = "";
  private stopped = true;
  private abort: (() => void) | null = null;
  private sleeping: { timer: ReturnType<typeof setTimeout>; wake: () => void } | null = null;
  private onChange: (s: NodeSnapshot) => void = () => {};
  private onError: (m: string) => void = () => {};
  private readonly kc: KubeConfig;
  private readonly api: CoreV1Api;
  private readonly watcher: Watch;
  /** Resolves when the list/watch loop has ended after stop(). */
  done: Promise<void> = Promise.resolve();

  constructor(private readonly o: KubeSourceOptions) {
    this.kc = o.kubeConfig ?? loadKubeConfig(o);
    this.api = this.kc.makeApiClient(CoreV1Api);
    this.watcher = new Watch(this.kc);
  }

  start(onChange: (s: NodeSnapshot) => void, onError?: (m: string) => void): void {
    this.onChange = onChange;
    if (onError) this.onError = onError;
    this.stopped = false;
    this.done = this.loop().catch((e: unknown) => {
      // Only a bug gets here (every API failure is handled in the loop); say so, loudly.
      this.onError(`kubernetes: node source stopped: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    });
  }

  stop(): void {
    this.stopped = true;
    this.abort?.();
    if (this.sleeping) {
      clearTimeout(this.sleeping.timer);
      this.sleeping.wake();
    }
  }

  /** The current node list. */
  snapshot(): NodeSnapshot {
    return { clusterCIDR: this.o.clusterCIDR, nodes: [...this.nodes.values()].sort((a, b) => (a.name < b.name ? -1 : 1)) };
  }

  private emit(): void {
    this.onChange(this.snapshot());
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        this.sleeping = null;
        resolve();
      };
      this.sleeping = { timer: setTimeout(wake, ms), wake };
    });
  }

  private async loop(): Promise<void> {
    const backoff = this.o.backoffMs ?? { initial: 1000, max: 30_000 };
    const grow = (d: number) => Math.min(Math.max(d * 2, backoff.initial), backoff.max);
    let delay = 0;
    let needList = true;
    // The wait after a watch that ended on an error event, growing while they come in a
    // row, so a server that fails every watch at once is not listed in a tight loop.
    let errorDelay = 0;
    while (!this.stopped) {
      if (delay > 0) {
        await this.sleep(delay);
        if (this.stopped) break;
      }
      if (needList) {
        try {
          await this.list();
          needList = false;
          delay = 0;
          this.emit();
        } catch (e) {
          delay = grow(delay);
          this.onError(`kubernetes: list nodes failed (${describe(e)}); retrying in ${delay} ms`);
          continue;
        }
      }
      const { end, events } = await this.watchOnce();
      if (events > 0) {
        delay = 0;
        errorDelay = 0;
      }
      switch (end) {
        case "relist":
          needList = true;
          delay = 0;
          break;
        case "error":
          needList = true;
          errorDelay = grow(errorDelay);
          delay = errorDelay;
          break;
        case "reconnect":
          delay = 0;
          break;
        case "failed":
          delay = grow(delay);
          break;
        case "stopped":
          break;
      }
    }
  }

  /** LIST all nodes, page by page; replaces the cache and the resourceVersion. */
  private async list(): Promise<void> {
    const items: V1Node[] = [];
    let cont: string | undefined;
    let rv = "";
    do {
      const page = await this.api.listNode({ limit: this.o.pageSize ?? 500, ...(cont ? { _continue: cont } : {}) });
      items.push(...page.items);
      rv = page.metadata?.resourceVersion ?? "";
      cont = page.metadata?._continue || undefined;
    } while (cont && !this.stopped);
    this.nodes.clear();
    for (const item of items) {
      const n = nodeInfoFromObject(item);
      if (n) this.nodes.set(n.name, n);
    }
    this.resourceVersion = rv;
  }

  /** One WATCH request, until it ends; says how the next one should start. */
  private watchOnce(): Promise<{ end: WatchEnd; events: number }> {
    const timeoutSeconds = this.o.watchTimeoutSeconds?.() ?? 300 + Math.floor(Math.random() * 300);
    // Bookmarks (about one a minute) keep a healthy quiet watch talking: one silent for
    // 150 s (or past the server's own timeout) is taken for dead, say behind a control-plane
    // node that went away without a reset, which TCP keepalive notices only after ~11 min.
    // A live but quiet one lost so costs a cheap reconnect from the same version.
    const idleMs = Math.min(timeoutSeconds + 30, this.o.idleSeconds ?? 150) * 1000;
    return new Promise((resolve) => {
      let events = 0;
      let outcome: WatchEnd | null = null;
      let controller: AbortController | null = null;
      let idle: ReturnType<typeof setTimeout> | null = null;
      let finished = false;
      const finish = (end: WatchEnd): void => {
        if (finished) return; // a late done() after an abort we already acted on
        finished = true;
        if (idle) clearTimeout(idle);
        idle = null;
        this.abort = null;
        resolve({ end: this.stopped ? "stopped" : end, events });
      };
      const end = (why: WatchEnd): void => {
        // Decide the outcome now; the client calls done() once the connection is torn down.
        outcome ??= why;
        controller?.abort();
        if (!controller) finish(why);
      };
      const armIdle = (): void => {
        if (idle) clearTimeout(idle);
        idle = setTimeout(() => {
          this.onError(`kubernetes: watch silent for ${idleMs / 1000} s; reconnecting`);
          end("reconnect");
        }, idleMs);
      };
      this.abort = () => end("stopped");
      armIdle();
      const onEvent = (type: string, obj: unknown): void => {
        if (outcome) return;
        armIdle();
        const o = obj as V1Node & { code?: number; message?: string };
        switch (type) {
          case "ADDED":
          case "MODIFIED": {
            events++;
            const n = nodeInfoFromObject(o);
            if (n) {
              const before = this.nodes.get(n.name);
              this.nodes.set(n.name, n);
              if (!before || before.ip !== n.ip || before.podCIDR !== n.podCIDR) this.emit();
            }
            break;
          }
          case "DELETED": {
            events++;
            const name = o.metadata?.name;
            if (name && this.nodes.delete(name)) this.emit();
            break;
          }
          case "BOOKMARK":
            events++;
            break;
          case "ERROR": {
            // 410 Gone (too old a version): relist at once. Any other error the stream
            // reports, such as a 504 "too large resource version" after an etcd restore:
            // a watch from the same version would fail the same way, so relist too, after
            // a wait that grows while they go on.
            if (o.code === 410) {
              this.onError(`kubernetes: watch expired (410 Gone: ${o.message ?? "too old resource version"}); relisting`);
              end("relist");
            } else {
              this.onError(`kubernetes: watch error ${o.code ?? "?"}: ${o.message ?? JSON.stringify(obj)}; relisting`);
              end("error");
            }
            return;
          }
          default:
            return;
        }
        const rv = o.metadata?.resourceVersion;
        if (rv) this.resourceVersion = rv;
      };
      const onDone = (err: unknown): void => {
        if (outcome) return finish(outcome);
        if (err == null) return finish("reconnect"); // the server closed the watch (its timeout): resume
        if (statusOf(err) === 410) {
          this.onError("kubernetes: watch answered 410 Gone; relisting");
          return finish("relist");
        }
        this.onError(`kubernetes: watch failed (${describe(err)}); reconnecting`);
        finish("failed");
      };
      this.watcher
        .watch(
          "/api/v1/nodes",
          { resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds },
          onEvent,
          onDone,
        )
        .then(
          (c: AbortController) => {
            controller = c;
            if (outcome) c.abort();
          },
          (e: unknown) => onDone(e ?? new Error("watch failed")),
        );
    });
  }
}
