// Shared by the benchmark modules: clean-up that runs however the process ends, the
// Markdown table every module prints (measure | value | baseline | ratio | goal), medians,
// progress lines, page-cache settling, and running a plugin as a runtime would.
import { spawnSync } from "node:child_process";
import { realpathSync, writeSync } from "node:fs";
import { join } from "node:path";
import { baseEnv, cniEnv, run } from "../lab/exec";
import { messageOf } from "../shared/cni/errors";

const cleanups: Array<() => void> = [];

/** Registers `fn` to run once when the bench ends (normally, on error, or on SIGINT/SIGTERM). */
export function onCleanup(fn: () => void): void {
  cleanups.push(fn);
}

/** Runs the registered clean-ups, newest first; each runs once, and one failing stops none. */
export function runCleanups(): void {
  for (let fn = cleanups.pop(); fn; fn = cleanups.pop()) {
    try {
      fn();
    } catch (e) {
      console.error(`bench clean-up: ${messageOf(e)}`);
    }
  }
}

/** A progress line on stderr (the tables go to stdout). */
export function progress(line: string): void {
  writeSync(2, `  … ${line}\n`);
}

/**
 * The environment of a CNI call by the plugins in `dir` for pod netns `podNs`, with the
 * CNI_ARGS containerd passes on every call, so both sides parse them as on a node. Not our
 * whole environment: plugins need none of it, and NODE_EXTRA_CA_CERTS would be in it.
 */
export function pluginEnv(dir: string, command: string, id: string, podNs: string): NodeJS.ProcessEnv {
  const args = `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${id};K8S_POD_INFRA_CONTAINER_ID=${id};K8S_POD_UID=00000000-0000-0000-0000-000000000000`;
  return { ...baseEnv(), ...cniEnv({ command, containerId: id, netns: `/run/netns/${podNs}`, path: dir, args }) };
}

/** Runs `dir`/bridge inside netns `hostNs` as a runtime would; its stdout, or throws with its output. */
export function runBridge(dir: string, hostNs: string, command: string, id: string, podNs: string, conf: object): string {
  const r = spawnSync("ip", ["netns", "exec", hostNs, join(dir, "bridge")], {
    env: pluginEnv(dir, command, id, podNs),
    input: JSON.stringify(conf),
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`${join(dir, "bridge")} ${command}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface Row {
  measure: string;
  value: string;
  baseline?: string;
  ratio?: string;
  goal?: string;
  /** true: met, false: missed, undefined: no goal */
  ok?: boolean;
}

export function table(rows: Row[]): string {
  const mark = (r: Row) => (r.ok === undefined ? "" : r.ok ? " ✓" : " ✗");
  return [
    "| measure | value | baseline | ratio | goal |",
    "| --- | --- | --- | --- | --- |",
    ...rows.map((r) => `| ${r.measure} | ${r.value} | ${r.baseline ?? "—"} | ${r.ratio ?? "—"} | ${(r.goal ?? "—") + mark(r)} |`),
  ].join("\n");
}

/**
 * Drops an executable from the page cache (`dd iflag=nocache`), so the next run maps it as
 * an installed binary read back from disk is mapped. Time and memory are measured that way
 * for weft and the reference alike: weft's executable, written moments ago by the build,
 * otherwise sits in the page cache in the large folios the write left, and every page
 * fault maps a whole folio: ~5 MB more RSS, and fewer faults, than a node sees once the
 * file has left the cache (a node that has just run `weft install` sees the fresh state).
 */
export function settleInPageCache(exe: string): void {
  run("dd", `if=${realpathSync(exe)}`, "iflag=nocache", "count=0", "status=none");
}
