// The reconciler: level-triggered. Every node-source event and every resync tick asks for
// a reconcile; requests arriving while one is pending coalesce into it, and a reconcile
// (synchronous from start to finish) computes the wanted state from the latest node list
// and converges the kernel to it. Nothing is remembered between runs except what to log:
// the kernel itself is the state, re-read each time.
import { type FSWatcher, statSync, watch, writeSync } from "node:fs";
import { attempt } from "../shared/attempt";
import { messageOf } from "../shared/cni/errors";
import { makeDirs, removeFile, writeText } from "../shared/fs";
import { formatCIDR } from "../shared/ip";
import { withSocket } from "../shared/netlink/socket";
import { writeSysctl } from "../shared/sysctl";
import { parseWeftConf, type WeftConf } from "../plugins/weft/config";
import { collectOrphans } from "../plugins/weft/gc";
import { attachmentsDir, isSavedAttachment, savedAttachments, type SavedAttachment } from "../plugins/weft/saved";
import { CONFLIST_VERSION, NETWORK_NAME, publishCniFiles, weftPluginConf } from "./cni-files";
import { computeDesired, normaliseCIDR, selfNode, WEFT_RTPROT, type Desired, type DirectRouting } from "./desired";
import { convergePeers, ensureAddress, ensureDevice, findUnderlay, VXLAN_OVERHEAD } from "./dataplane";
import { Coalesced } from "./coalesced";
import { watchKernel, type KernelWatch } from "./kernel-watch";
import { forwardAccept } from "../shared/firewall/iptables";
import { NFPROTO, withNetfilter } from "../shared/netlink/nftables";
import { OVERLAY_TABLE } from "../shared/firewall/common";
import { convergeOverlayRules } from "./overlay-rules";
import type { NodeSnapshot, NodeSource } from "./types";
import { FastPath, removeFastPath, type CrossNode } from "./fastpath";

export interface AgentOptions {
  nodeName: string;
  /** underlay interface; default: the one holding the node address */
  iface?: string;
  vni: number;
  port: number;
  /** overlay MTU; default: underlay MTU − 50 */
  mtu?: number;
  directRouting: DirectRouting;
  /** auto: the fast path where the kernel takes it (fastpath.ts); never: the kernel's forwarding alone */
  fastPath: "auto" | "never";
  stateDir: string;
  ipamDir: string;
  cniConfDir: string;
  masquerade: boolean;
  /** resync period, seconds */
  resyncSeconds: number;
  /**
   * A file that exists exactly while the last reconcile left the node ready: for a
   * readiness probe, which must not trust subnet.json and the conflist, files an earlier
   * agent left on the host.
   */
  readyFile?: string;
  /** one line per change or problem (default: stderr) */
  log?: (line: string) => void;
}

export interface ReconcileResult {
  /** the overlay is up for our subnet and the CNI files are written */
  ready: boolean;
  /** what the kernel and files were changed by this run, one line each */
  changes: string[];
  /** what stopped it or went wrong (it retries on the next run) */
  problems: string[];
  desired?: Desired;
}

export function deviceName(vni: number): string {
  return `weft.${vni}`;
}

function stderrLine(line: string): void {
  // fs.writeSync: console/process.stderr are slow to set up under Bun, and a synchronous
  // write keeps lines whole and ordered.
  writeSync(2, `${line}\n`);
}

export class Agent {
  private snapshot: NodeSnapshot | null = null;
  private readonly reconcileSoon = new Coalesced(() => this.reconcile());
  private ticker: ReturnType<typeof setInterval> | null = null;
  private kernel: KernelWatch | null = null;
  private deviceIndex: number | undefined;
  private weftConf: WeftConf | undefined;
  /** the lines about orphans a plugin held at the last pass, so each is logged once */
  private heldOrphans = new Set<string>();
  private fastPath: FastPath | undefined;
  /** the devices and peers of the last reconcile that got that far, for the fast path's own runs */
  private crossNode: CrossNode | undefined;
  /** the attachments directory (and which file it is: device and inode), watched while the fast path is on */
  private attachments: { watcher: FSWatcher; file: string } | null = null;
  /** a fast path run of its own, soon: the attachments changed, or an ADD is making its pod's interface */
  private readonly fastPathSoon = new Coalesced(() => this.runFastPath());
  /** earlier agents' programs taken off (when this one runs without the fast path) */
  private leftoversGone = false;
  private running = false;
  /** runs in a row that looked again after hearing of changes while they ran: all, and those that changed something */
  private lookedAgain = { runs: 0, changing: 0 };
  private lastProblems = new Set<string>();
  private readonly log: (line: string) => void;
  /** Outcome of the latest reconcile. */
  last: ReconcileResult = { ready: false, changes: [], problems: ["no node list yet"] };

  constructor(
    readonly o: AgentOptions,
    private readonly source: NodeSource,
  ) {
    this.log = o.log ?? stderrLine;
  }

  start(): void {
    // Our device, its entries, our routes or our nftables table changed by hand, or the
    // FORWARD policy switched: acted on now, not at the next tick.
    const watched = {
      device: deviceName(this.o.vni),
      deviceIndex: () => this.deviceIndex,
      routeProtocol: WEFT_RTPROT,
      // Its own table, and the FORWARD chain whose policy decides the forward marks and
      // which holds iptables' accept rule for them.
      nft: [
        { family: NFPROTO.IPV4, table: OVERLAY_TABLE },
        { family: NFPROTO.IPV4, table: "filter", chain: "FORWARD" },
      ],
    };
    // First: if it cannot start, nothing else has, and no timer keeps the process alive.
    this.kernel = watchKernel(watched, () => this.trigger(), (m) => this.log(m));
    this.source.start(
      (s) => {
        this.snapshot = s;
        this.trigger();
      },
      (m) => this.log(m),
    );
    this.ticker = setInterval(() => this.trigger(), this.o.resyncSeconds * 1000);
    if (this.o.fastPath === "auto") this.startFastPath();
  }

  private startFastPath(): void {
    const loaded = FastPath.load();
    if (typeof loaded === "string") {
      this.log(`fast path off: ${loaded}`);
      return;
    }
    this.fastPath = loaded;
    this.log("fast path on");
  }

  /**
   * Watches the attachments directory, made if missing, again if it was made anew: an
   * ADD's saved attachment or a DEL's removal asks for a fast path run.
   */
  private watchAttachments(): void {
    const dir = attachmentsDir(this.weftConfig());
    makeDirs(dir);
    const st = statSync(dir);
    const file = `${st.dev}:${st.ino}`;
    if (this.attachments?.file === file) return;
    this.attachments?.watcher.close();
    // The saved attachments' own files only: not the lock files and temporary copies beside them.
    const watcher = watch(dir, (_, name) => {
      if (name === null || isSavedAttachment(name)) this.fastPathSoon.ask();
    });
    watcher.on("error", (e) => {
      this.log(`fast path: watching ${dir}: ${messageOf(e)}`);
      watcher.close();
      if (this.attachments?.watcher === watcher) this.attachments = null;
    });
    this.attachments = { watcher, file };
  }

  /**
   * The fast path alone, not a full reconcile: a pod's ADD changes nothing else the agent
   * keeps. (Every full reconcile runs the fast path too.)
   */
  private runFastPath(): void {
    const problems: string[] = [];
    this.convergeFastPath(this.log, problems, savedAttachments(this.weftConfig()));
    // Said once, with the reconcile's: the next reconcile starts the set afresh.
    for (const p of problems) {
      if (this.lastProblems.has(p)) continue;
      this.log(p);
      this.lastProblems.add(p);
    }
  }

  /** Stops watching and ticking; the dataplane stays as it is. */
  stop(): void {
    this.source.stop();
    if (this.ticker) clearInterval(this.ticker);
    this.reconcileSoon.stop();
    this.kernel?.stop();
    this.fastPathSoon.stop();
    this.attachments?.watcher.close();
    this.ticker = this.kernel = this.attachments = null;
  }

  /** Asks for a reconcile soon; any number of asks before it runs make one run. */
  trigger(): void {
    this.reconcileSoon.ask();
  }

  /** Sets the node list without a source (tests, tools); call reconcile() to apply it. */
  setSnapshot(s: NodeSnapshot): void {
    this.snapshot = s;
  }

  /** One full reconcile, now. */
  reconcile(): ReconcileResult {
    if (this.running) throw new Error("reconcile is not reentrant");
    this.running = true;
    const changes: string[] = [];
    const problems: string[] = [];
    const log = (line: string): void => {
      changes.push(line);
      this.log(line);
    };
    let result: ReconcileResult;
    try {
      result = { ...this.run(log, problems), changes, problems };
    } catch (e) {
      problems.push(`reconcile failed: ${messageOf(e)}`);
      result = { ready: false, changes, problems };
    } finally {
      this.running = false;
    }
    this.lookAgainIfHeard(changes.length > 0);
    if (this.o.readyFile) this.markReady(this.o.readyFile, result.ready, problems);
    // Problems are logged when they appear, not again on every resync while they last.
    this.lastProblems = logNew(this.lastProblems, problems, this.log);
    this.last = result;
    return result;
  }

  /**
   * What the kernel said during a run is the run's own changes, or someone's it may have
   * missed: one more run tells (it changes nothing and hears nothing when all was its own).
   * One that changed nothing heard someone else, and always looks again; runs that keep
   * changing what they hear stop after two looks, and any chain after ten, so changes
   * that never settle wait for the resync instead of looping.
   */
  private lookAgainIfHeard(changed: boolean): void {
    const heard = this.kernel?.drain() ?? false;
    const changing = changed ? this.lookedAgain.changing + 1 : 0;
    if (heard && changing <= 2 && this.lookedAgain.runs < 10) {
      this.lookedAgain = { runs: this.lookedAgain.runs + 1, changing };
      this.trigger();
    } else {
      this.lookedAgain = { runs: 0, changing: 0 };
    }
  }

  /** Whether the ready file is there, as this agent last made it (unknown before the first run). */
  private readyMarked: boolean | undefined;

  private markReady(file: string, ready: boolean, problems: string[]): void {
    if (ready === this.readyMarked) return;
    attempt(
      problems,
      () => {
        if (ready) writeText(file, "");
        else removeFile(file, { force: true });
        this.readyMarked = ready;
      },
      `ready file ${file}`,
    );
  }

  private run(log: (line: string) => void, problems: string[]): { ready: boolean; desired?: Desired } {
    const snap = this.snapshot;
    if (!snap) {
      problems.push("waiting for the node list");
      return { ready: false };
    }
    const cluster = normaliseCIDR(snap.clusterCIDR);
    if (!cluster) {
      problems.push(`cluster CIDR "${snap.clusterCIDR}" is not an IPv4 CIDR`);
      return { ready: false };
    }
    const me = selfNode(snap, this.o.nodeName, cluster);
    if (!me.ok) {
      problems.push(`waiting: ${me.reason}`);
      return { ready: false };
    }
    const self = me.self;
    const clusterCIDR = formatCIDR(cluster.ip, cluster.prefix);
    const name = deviceName(this.o.vni);

    let desired: Desired | undefined;
    let mtu = 0;
    const peerErrors = withSocket(undefined, (nl) => {
      const underlay = findUnderlay(nl, self.nodeIP, this.o.iface);
      mtu = this.o.mtu ?? underlay.mtu - VXLAN_OVERHEAD;
      desired = computeDesired(snap, self, { cluster, directRouting: this.o.directRouting, underlay: underlay.cidr });
      const dev = ensureDevice(nl, { name, vni: this.o.vni, port: this.o.port, mtu }, desired, underlay, log);
      this.deviceIndex = dev.index;
      this.crossNode = {
        ins: [underlay, dev],
        peers: new Map(desired.peers.map((p) => [p.podCIDR, p.mode === "direct" ? underlay.index : dev.index])),
      };
      ensureAddress(nl, dev, self.address, log);
      return convergePeers(nl, dev, underlay, desired, log);
    });
    problems.push(...peerErrors);
    for (const s of desired!.skipped) problems.push(`skipping node ${s.name}: ${s.reason}`);

    // A failed write (a read-only /proc/sys) is a problem to report, not the end of the run.
    attempt(problems, () => {
      if (writeSysctl("net/ipv4/ip_forward", "1")) log("sysctl net.ipv4.ip_forward=1");
    }, "sysctl");

    attempt(
      problems,
      () => {
        const line = withNetfilter((nf) => {
          // Checked on every run: Docker may switch FORWARD to DROP long after pods started.
          const forwardMarks = forwardAccept(nf, [4]).has(4);
          return convergeOverlayRules({ podCIDR: self.podCIDR, clusterCIDR, masquerade: this.o.masquerade, forwardMarks }, nf);
        });
        if (line) log(line);
      },
      "packet filter",
    );

    // The device is up with its address: the node can take pods. subnet.json first, then
    // the conflist, so the runtime never finds the network before the plugin can serve it.
    for (const line of publishCniFiles(this.o, { podCIDR: self.podCIDR, clusterCIDR, mtu })) log(line);
    // Read once for both (an orphan the pass removes has no netns for the fast path to enter).
    const attachments = savedAttachments(this.weftConfig());
    this.collectOrphans(log, problems, attachments);
    this.convergeFastPath(log, problems, attachments);
    return { ready: true, desired: desired! };
  }

  /** The weft plugin's config as the conflist gives it; it never changes while we run. */
  private weftConfig(): WeftConf {
    return (this.weftConf ??= parseWeftConf({ cniVersion: CONFLIST_VERSION, name: NETWORK_NAME, ...weftPluginConf(this.o) }));
  }

  private convergeFastPath(log: (line: string) => void, problems: string[], attachments: SavedAttachment[]): void {
    const fastPath = this.fastPath;
    const cross = this.crossNode;
    if (!cross) return; // no reconcile has found the devices yet: it runs the fast path when one does
    attempt(
      problems,
      () => {
        // Programs an earlier agent left would go on with maps nobody keeps. Only an
        // earlier agent can have left any: one pass that ends well is enough.
        if (!fastPath) {
          if (!this.leftoversGone) removeFastPath(this.weftConfig()).forEach(log);
          this.leftoversGone = true;
          return;
        }
        // Without the watch the resync still brings new pods the fast path.
        attempt(problems, () => this.watchAttachments(), "fast path: watching the attachments");
        const run = fastPath.converge(this.weftConfig(), cross, attachments);
        run.changes.forEach(log);
        problems.push(...run.problems);
        if (run.waiting) this.fastPathSoon.ask(100);
      },
      "fast path",
    );
  }

  /** Runs DEL for the node's attachments whose pod netns is gone (plugins/weft/gc.ts). */
  private collectOrphans(log: (line: string) => void, problems: string[], attachments: SavedAttachment[]): void {
    attempt(
      problems,
      () => {
        const { removed, busy, failed } = collectOrphans(this.weftConfig(), attachments);
        for (const a of removed) log(`gc: released ${a.containerID}/${a.ifname} (its netns ${a.saved?.netns} is gone)`);
        // Said once while it stays busy: a plugin stuck holding the lock keeps the pod's IP.
        const held = busy.map((a) => `gc: ${a.containerID}/${a.ifname} left for a later pass: its netns is gone, but a plugin holds its lock`);
        this.heldOrphans = logNew(this.heldOrphans, held, log);
        for (const f of failed) problems.push(`gc: ${f}`);
      },
      "gc",
    );
  }
}

/** Logs each of `now` not in `before` (said once while it lasts); returns `now` as the next `before`. */
function logNew(before: Set<string>, now: string[], log: (line: string) => void): Set<string> {
  const next = new Set(now);
  for (const line of next) if (!before.has(line)) log(line);
  return next;
}
