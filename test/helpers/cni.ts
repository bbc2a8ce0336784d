// Runs the compiled weft executable as a container runtime would: CNI_* in the
// environment, the network config on stdin, inside the test's "host" netns.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { baseEnv, cniEnv } from "../../lab/exec";
import { IP } from "./netns";
export { REFERENCE_BIN_DIR } from "../../lab/exec";

export const ROOT = join(import.meta.dirname, "..", "..");
export const BIN_DIR = join(ROOT, "dist", "bin");

export function requireBuild(): void {
  if (!existsSync(join(BIN_DIR, "weft"))) throw new Error("dist/bin/weft missing: run `npm run build` first");
}

export interface CniCall {
  plugin: string;
  command: "ADD" | "DEL" | "CHECK" | "VERSION" | "STATUS" | "GC";
  conf: Record<string, unknown> | string;
  /** netns the plugin runs in (the "host"); the caller's own when omitted */
  hostNs?: string;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  /** directories searched for delegated plugins */
  path?: string[];
  /** the directory holding the plugin executable (default dist/bin) */
  binDir?: string;
  env?: Record<string, string>;
}

export interface CniReply {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON when it is JSON */
  json: Record<string, any> | undefined;
}

function prepare(c: CniCall): { cmd: string; argv: string[]; env: NodeJS.ProcessEnv; input: string } {
  const bin = join(c.binDir ?? BIN_DIR, c.plugin);
  const env: NodeJS.ProcessEnv = {
    // TMPDIR: test/helpers/global-tmpdir.ts
    ...baseEnv(),
    ...cniEnv({
      command: c.command,
      containerId: c.containerId ?? "",
      netns: c.netns ?? "",
      ifname: c.ifname,
      args: c.args ?? "",
      path: (c.path ?? [c.binDir ?? BIN_DIR]).join(":"),
    }),
    ...c.env,
  };
  const input = typeof c.conf === "string" ? c.conf : JSON.stringify(c.conf);
  return c.hostNs
    ? { cmd: IP, argv: ["netns", "exec", c.hostNs, bin], env, input }
    : { cmd: bin, argv: [], env, input };
}

function reply(code: number, stdout: string, stderr: string): CniReply {
  let json: Record<string, any> | undefined;
  try {
    json = JSON.parse(stdout) as Record<string, any>;
  } catch {
    json = undefined;
  }
  return { code, stdout, stderr, json };
}

export function cni(c: CniCall): CniReply {
  const p = prepare(c);
  const r = spawnSync(p.cmd, p.argv, { env: p.env, input: p.input, encoding: "utf8" });
  return reply(r.status ?? -1, r.stdout, r.stderr);
}

/** The same, without blocking: for concurrency tests. */
export function cniAsync(c: CniCall): Promise<CniReply> {
  const p = prepare(c);
  return new Promise((resolve) => {
    const child = spawn(p.cmd, p.argv, { env: p.env });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("close", (code) => resolve(reply(code ?? -1, out, err)));
    child.stdin.end(p.input);
  });
}
