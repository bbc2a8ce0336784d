// A private containerd for e2e tests, and a tiny image to run in it.
//
// containerd and every `ctr` call run inside a network namespace the test made and a
// private mount namespace in which /etc, /var, /run and /opt are overlays whose upper
// dirs live in the test's work dir. So everything containerd, ctr (go-cni) and the CNI
// plugins write outside that work dir lands in the overlays, never on the host:
//   /etc/cni/net.d  <- bind of <workDir>/net.d       (go-cni's fixed conf dir)
//   /opt/cni/bin    <- bind of the plugin dir         (go-cni's fixed plugin dir)
//   /var/lib/cni    <- bind of <workDir>/cni-cache    (libcni's result cache)
//   /run/containerd <- overlay upper                  (shim sockets, runc root, FIFOs)
// and the bridge, nft tables and sysctls the plugins make belong to the test's netns.
// The only host-global state is the containers' cgroups: they are created under
// /<namespace>/ (a test-unique name) and removed by `stop`.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmdirSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { sleep } from "../../lab/exec";

function run(cmd: string, args: string[], input?: string): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: 30_000 });
  return { ok: r.status === 0, out: r.stdout ?? "", err: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

// ---------------------------------------------------------------------------------
// Image: an OCI image layout tar built from Debian's busybox-static.

export const BUSYBOX = "/bin/busybox";
const DEFAULT_APPLETS = ["sh", "sleep", "ping", "ip", "cat", "ls", "echo", "true", "nc", "wget"];

function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

function ociArch(): string {
  const map: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ppc64: "ppc64le", s390x: "s390x", riscv64: "riscv64" };
  const a = map[process.arch];
  if (!a) throw new Error(`no OCI architecture for ${process.arch}`);
  return a;
}

export interface ImageOptions {
  /** a scratch directory for the rootfs, blobs and the tar */
  dir: string;
  /** the name containerd will know it by, e.g. "localhost/weft-e2e/busybox:latest" */
  ref: string;
  applets?: string[];
}

/**
 * Builds a one-layer OCI image (busybox + applet symlinks) as an OCI image layout tar,
 * ready for `ctr images import`. Returns the tar's path.
 */
export function buildBusyboxImage(o: ImageOptions): string {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} missing: install Debian's busybox-static (build/setup.sh does)`);
  // A dynamically linked busybox (Debian's `busybox` package) would not run in an image without libc.
  if (run("ldd", [BUSYBOX]).ok) throw new Error(`${BUSYBOX} is dynamically linked: install busybox-static instead of busybox`);

  const rootfs = join(o.dir, "rootfs");
  const blobs = join(o.dir, "layout", "blobs", "sha256");
  mkdirSync(join(rootfs, "bin"), { recursive: true });
  mkdirSync(blobs, { recursive: true });
  for (const d of ["proc", "sys", "dev", "etc", "tmp", "root"]) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(BUSYBOX, join(rootfs, "bin", "busybox"));
  for (const a of o.applets ?? DEFAULT_APPLETS) symlinkSync("busybox", join(rootfs, "bin", a));

  const layerTar = join(o.dir, "layer.tar");
  const t = run("tar", ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-C", rootfs, "-cf", layerTar, "."]);
  if (!t.ok) throw new Error(`tar of the image layer failed: ${t.err}`);
  const layer = readFileSync(layerTar);

  const blob = (data: Buffer | string): { digest: string; size: number } => {
    const hex = sha256(data);
    writeFileSync(join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: Buffer.byteLength(data) };
  };
  const layerBlob = blob(layer);
  const platform = { architecture: ociArch(), os: "linux" };
  const config = blob(
    JSON.stringify({
      ...platform,
      config: { Env: ["PATH=/bin"], Cmd: ["sh"], WorkingDir: "/" },
      rootfs: { type: "layers", diff_ids: [layerBlob.digest] },
    }),
  );
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layerBlob }],
    }),
  );
  const layout = join(o.dir, "layout");
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          platform,
          // ctr import names the image after this annotation as is
          annotations: { "io.containerd.image.name": o.ref, "org.opencontainers.image.ref.name": o.ref.split(":").pop() },
        },
      ],
    }),
  );
  const out = join(o.dir, "image.tar");
  const p = run("tar", ["-C", layout, "-cf", out, "oci-layout", "index.json", "blobs"]);
  if (!p.ok) throw new Error(`tar of the image layout failed: ${p.err}`);
  return out;
}

// ---------------------------------------------------------------------------------
// The daemon.

export interface ContainerdOptions {
  /** test-unique: the containerd namespace, and so the cgroup parent of every container */
  namespace: string;
  /** root, state, socket, overlay upper dirs, CNI conf and cache dirs go here */
  workDir: string;
  /** an existing netns (`ip netns add`) for containerd, its shims and ctr, hence the CNI plugins */
  netns: string;
  /** mounted at /opt/cni/bin for ctr */
  cniBinDir: string;
}

/** A container started with `ctr run --cni --rm` in the foreground (so ctr calls DEL when it ends). */
export interface CtrRun {
  id: string;
  child: ChildProcess;
  /** stdout + stderr of ctr (and the container) so far */
  output(): string;
  /** resolves with ctr's exit code once it returned (after DEL and the deletes) */
  exited: Promise<number | null>;
  /** true once the child has exited */
  done(): boolean;
}

// The overlays cover these; the work dir and plugin dir must be elsewhere or the
// daemon would write into the overlay instead of the directory the test reads.
const OVERLAID = ["etc", "var", "run", "opt"];

export class PrivateContainerd {
  readonly sock: string;
  /** the CNI conf dir ctr sees as /etc/cni/net.d */
  readonly confDir: string;
  /** the libcni cache ctr sees as /var/lib/cni */
  readonly cacheDir: string;
  readonly log: string;
  private daemon: ChildProcess | undefined;
  private daemonExit: Promise<void> | undefined;
  private mntNs = "";
  /** keeps containerd's mount namespace, and so its inode number, alive until stop() is done with it */
  private mntNsFd: number | undefined;
  private readonly runs = new Map<string, CtrRun>();
  private execs = 0;

  constructor(readonly o: ContainerdOptions) {
    mkdirSync(o.workDir, { recursive: true });
    for (const p of [o.workDir, o.cniBinDir]) {
      const real = realpathSync(p);
      if (OVERLAID.some((d) => real === `/${d}` || real.startsWith(`/${d}/`))) {
        throw new Error(`${p} is under /${OVERLAID.join(", /")}, which the private mount namespace overlays: use another directory`);
      }
    }
    this.sock = join(o.workDir, "containerd.sock");
    this.confDir = join(o.workDir, "net.d");
    this.cacheDir = join(o.workDir, "cni-cache");
    this.log = join(o.workDir, "containerd.log");
  }

  get pid(): number | undefined {
    return this.daemon?.pid;
  }

  /** Starts the daemon; resolves once it answers, throws with its log if it cannot. */
  async start(): Promise<void> {
    const w = this.o.workDir;
    for (const d of OVERLAID) {
      if (!existsSync(`/${d}`)) throw new Error(`host has no /${d}: cannot overlay it without creating it on the host`);
      mkdirSync(join(w, "overlay", d, "upper"), { recursive: true });
      mkdirSync(join(w, "overlay", d, "work"), { recursive: true });
    }
    for (const d of ["root", "state", "cgroup-move", "net.d", "cni-cache"]) mkdirSync(join(w, d), { recursive: true });
    writeFileSync(
      join(w, "config.toml"),
      [
        "version = 2",
        `root = ${JSON.stringify(join(w, "root"))}`,
        `state = ${JSON.stringify(join(w, "state"))}`,
        "disabled_plugins = [",
        '  "io.containerd.grpc.v1.cri",',
        '  "io.containerd.internal.v1.opt",',
        '  "io.containerd.snapshotter.v1.aufs",',
        '  "io.containerd.snapshotter.v1.btrfs",',
        '  "io.containerd.snapshotter.v1.zfs",',
        '  "io.containerd.snapshotter.v1.devmapper",',
        "]",
        "[grpc]",
        `  address = ${JSON.stringify(this.sock)}`,
        "[debug]",
        '  level = "info"',
        "",
      ].join("\n"),
    );
    const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
    const script = [
      "set -eu",
      // `ip netns exec` would mount a sysfs of the netns over /sys and hide the cgroup
      // mounts runc needs; do the same by hand, keeping /sys/fs/cgroup.
      `mount --rbind /sys/fs/cgroup ${q(join(w, "cgroup-move"))}`,
      "mount -t sysfs sysfs /sys",
      `mount --move ${q(join(w, "cgroup-move"))} /sys/fs/cgroup`,
      ...OVERLAID.map(
        (d) => `mount -t overlay overlay -o ${q(`lowerdir=/${d},upperdir=${join(w, "overlay", d, "upper")},workdir=${join(w, "overlay", d, "work")}`)} /${d}`,
      ),
      "mkdir -p /etc/cni/net.d /opt/cni/bin /var/lib/cni",
      `mount --bind ${q(this.confDir)} /etc/cni/net.d`,
      `mount --bind ${q(this.o.cniBinDir)} /opt/cni/bin`,
      `mount --bind ${q(this.cacheDir)} /var/lib/cni`,
      `exec containerd --config ${q(join(w, "config.toml"))}`,
    ].join("\n");
    const logFd = openSync(this.log, "a");
    const child = spawn(
      "nsenter",
      [`--net=/run/netns/${this.o.netns}`, "--", "unshare", "--mount", "--propagation", "private", "sh", "-c", script],
      { stdio: ["ignore", logFd, logFd] },
    );
    closeSync(logFd);
    this.daemon = child;
    let exited: string | undefined;
    this.daemonExit = new Promise((r) => child.on("exit", (code, signal) => ((exited = signal ?? `code ${code}`), r())));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (exited) throw new Error(`containerd (or its mount setup) exited at start (${exited}); ${this.log}:\n${this.logTail()}`);
      if (existsSync(this.sock) && child.pid && this.tryCtr("version").ok) break;
      if (Date.now() > deadline) throw new Error(`containerd did not answer within 15 s:\n${this.logTail()}`);
      await sleep(50);
    }
    // nsenter, unshare and sh exec one another: the child is containerd itself.
    // Namespace inode numbers are reused once a namespace dies: hold ours open, or a
    // concurrent run tearing down could match its stale number against our daemon.
    this.mntNsFd = openSync(`/proc/${child.pid}/ns/mnt`, "r");
    this.mntNs = readlinkSync(`/proc/${child.pid}/ns/mnt`);
    if (this.mntNs === readlinkSync("/proc/self/ns/mnt")) throw new Error("containerd is in the host's mount namespace");
  }

  logTail(lines = 30): string {
    try {
      return readFileSync(this.log, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  /** argv running `cmd` in containerd's netns and mount namespace */
  inside(cmd: string, ...args: string[]): string[] {
    if (!this.daemon?.pid) throw new Error("containerd not started");
    return ["nsenter", "-t", String(this.daemon.pid), "-m", "-n", "--", cmd, ...args];
  }

  private ctrArgv(args: string[]): string[] {
    // a bounded dial: a hung or dead daemon fails the call instead of blocking teardown
    return this.inside("ctr", "--address", this.sock, "--connect-timeout", "5s", "--namespace", this.o.namespace, ...args);
  }

  tryCtr(...args: string[]): { ok: boolean; out: string } {
    const [cmd, ...rest] = this.ctrArgv(args);
    const r = run(cmd!, rest);
    return { ok: r.ok, out: r.out + r.err };
  }

  ctr(...args: string[]): string {
    const [cmd, ...rest] = this.ctrArgv(args);
    const r = run(cmd!, rest);
    if (!r.ok) throw new Error(`ctr ${args.join(" ")}: ${(r.err || r.out).trim()}`);
    return r.out;
  }

  importImage(tar: string): void {
    this.ctr("images", "import", tar);
  }

  /** `ctr task exec` in a running container; returns {ok, out}. */
  exec(id: string, ...cmd: string[]): { ok: boolean; out: string } {
    return this.tryCtr("tasks", "exec", "--exec-id", `x${++this.execs}`, id, ...cmd);
  }

  /** Task status as `ctr tasks ls` shows it ("RUNNING", "STOPPED", …), undefined without a task. */
  taskStatus(id: string): string | undefined {
    const r = this.tryCtr("tasks", "ls");
    for (const line of r.out.split("\n").slice(1)) {
      const [tid, , status] = line.trim().split(/\s+/);
      if (tid === id) return status;
    }
    return undefined;
  }

  containers(): string[] {
    return this.tryCtr("containers", "ls", "-q").out.split("\n").filter(Boolean);
  }

  /**
   * `ctr run --cni --rm IMAGE ID CMD…` in the background. ctr 1.6 runs CNI ADD itself
   * before starting the task and DEL (with an empty netns: the task has exited, its
   * netns is gone) when the task ends; `ctr run -d` never calls DEL.
   */
  runCni(image: string, id: string, cmd: string[]): CtrRun {
    const [c, ...rest] = this.ctrArgv(["run", "--cni", "--rm", image, id, ...cmd]);
    const child = spawn(c!, rest, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let isDone = false;
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on("close", (code) => ((isDone = true), r(code))));
    const h: CtrRun = { id, child, output: () => out, exited, done: () => isDone };
    this.runs.set(id, h);
    return h;
  }

  /** Waits until the task runs (ADD done, task started); throws with ctr's output if it ended instead. */
  async waitRunning(h: CtrRun, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.taskStatus(h.id) !== "RUNNING") {
      if (h.done()) throw new Error(`ctr run ${h.id} ended before the task ran:\n${h.output()}\n--- containerd:\n${this.logTail(10)}`);
      if (Date.now() > deadline) throw new Error(`task ${h.id} not running after ${timeoutMs} ms:\n${h.output()}`);
      await sleep(50);
    }
  }

  /** Kills a task; resolves with ctr run's exit code once ctr has called DEL and removed it. */
  async kill(h: CtrRun, timeoutMs = 15_000): Promise<number | null> {
    this.ctr("tasks", "kill", "--signal", "SIGKILL", h.id);
    const timer = sleep(timeoutMs).then(() => "timeout" as const);
    const r = await Promise.race([h.exited, timer]);
    if (r === "timeout") throw new Error(`ctr run ${h.id} still running ${timeoutMs} ms after kill:\n${h.output()}`);
    return r;
  }

  /** Processes in containerd's mount namespace (the daemon and its shims). */
  private processesInside(): number[] {
    if (!this.mntNs) return [];
    const pids: number[] = [];
    for (const e of readdirSync("/proc")) {
      if (!/^\d+$/.test(e)) continue;
      try {
        if (readlinkSync(`/proc/${e}/ns/mnt`) === this.mntNs) pids.push(Number(e));
      } catch {
        // exited meanwhile
      }
    }
    return pids;
  }

  /** Cgroup dirs of this namespace on every hierarchy (v1 controllers or unified). */
  private cgroupDirs(): string[] {
    const root = "/sys/fs/cgroup";
    const dirs = [join(root, this.o.namespace)];
    try {
      for (const c of readdirSync(root)) dirs.push(join(root, c, this.o.namespace));
    } catch {
      // no cgroupfs
    }
    return dirs.filter((d) => existsSync(d));
  }

  /**
   * Tears everything down, also after a failed test: kills tasks (letting running ctr
   * calls run their DEL), deletes containers, stops the daemon and its shims, removes
   * the cgroups. The mounts die with the mount namespace. Returns what it could not
   * clean (empty when all is gone).
   */
  async stop(): Promise<string[]> {
    const problems: string[] = [];
    if (this.daemon?.pid && !this.daemonExitedSync()) {
      for (const id of this.tryCtr("tasks", "ls", "-q").out.split("\n").filter(Boolean)) {
        this.tryCtr("tasks", "kill", "--signal", "SIGKILL", id);
      }
      // ctr run calls DEL and deletes task and container once the task is gone
      const pending = [...this.runs.values()].filter((h) => !h.done());
      await Promise.race([Promise.all(pending.map((h) => h.exited)), sleep(10_000)]);
      for (const h of this.runs.values()) if (!h.done()) h.child.kill("SIGKILL");
      for (const id of this.tryCtr("tasks", "ls", "-q").out.split("\n").filter(Boolean)) {
        this.tryCtr("tasks", "delete", "--force", id);
      }
      for (const id of this.containers()) this.tryCtr("containers", "delete", id);
      this.daemon.kill("SIGTERM");
      if (await Promise.race([this.daemonExit!.then(() => true), sleep(5_000).then(() => false)])) {
        // exited
      } else {
        this.daemon.kill("SIGKILL");
        await Promise.race([this.daemonExit, sleep(2_000)]);
      }
    }
    // Shims outlive the daemon; they are ours (children of our containerd).
    for (let i = 0; i < 100; i++) {
      const left = this.processesInside();
      if (left.length === 0) break;
      for (const pid of left) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      await sleep(100);
    }
    const stillInside = this.processesInside();
    if (stillInside.length) problems.push(`processes left in containerd's mount namespace: ${stillInside.join(", ")}`);
    // Nobody is inside any more: let the namespace, and with it every mount, go.
    if (this.mntNsFd !== undefined) closeSync(this.mntNsFd);
    this.mntNsFd = undefined;
    this.mntNs = "";

    // Container cgroups: /<namespace>/<id> on each hierarchy.
    for (let i = 0; i < 100; i++) {
      const dirs = this.cgroupDirs();
      if (dirs.length === 0) break;
      for (const d of dirs) {
        const subs = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(d, e.name));
        for (const s of [...subs, d]) {
          try {
            for (const pid of readFileSync(join(s, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) process.kill(Number(pid), "SIGKILL");
          } catch {
            // no procs file or process gone
          }
        }
        for (const s of [...subs, d]) {
          try {
            rmdirSync(s);
          } catch {
            // busy: retried
          }
        }
      }
      await sleep(100);
    }
    const cg = this.cgroupDirs();
    if (cg.length) problems.push(`cgroups left: ${cg.join(", ")}`);

    // Nothing was mounted in the host's namespace; if something leaked, lazily unmount it.
    for (const m of mountsUnder(this.o.workDir)) {
      run("umount", ["-l", m]);
      problems.push(`mount leaked into the host namespace: ${m}`);
    }
    return problems;
  }

  private daemonExitedSync(): boolean {
    return this.daemon?.exitCode !== null || this.daemon?.signalCode !== null;
  }
}

/** Mount points in this process's mount namespace at or below `dir`. */
export function mountsUnder(dir: string): string[] {
  const real = existsSync(dir) ? realpathSync(dir) : dir;
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m === real || m.startsWith(`${real}/`));
}
