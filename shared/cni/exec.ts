// Executing another CNI plugin (a delegated IPAM plugin) by the standard protocol:
// found on CNI_PATH, config on stdin, CNI_* in the environment, result or error JSON
// on stdout.
import { findExecutable, run } from "../process";
import type { CniEnv } from "./env";
import { CniError, ErrorCode } from "./errors";
import { parsePrevResult, type Result } from "./result";

function findPlugin(type: string, path: string[]): string {
  // A name, not a path: only what CNI_PATH holds may run (libcni's FindInPath refuses the same).
  if (type === "" || type.includes("/")) throw new CniError(ErrorCode.InvalidConfig, `invalid plugin name "${type}"`);
  const bin = findExecutable(type, path);
  if (!bin) throw new CniError(ErrorCode.InvalidConfig, `failed to find plugin "${type}" in path [${path.join(" ")}]`);
  return bin;
}

/** Runs plugin `type` for `command` with `conf` as stdin; returns its result for ADD. */
export function execPlugin(type: string, command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS", conf: Record<string, unknown>, env: CniEnv): Result | undefined {
  const bin = findPlugin(type, env.path);
  let args = "";
  for (const [k, v] of env.args) args += `${args ? ";" : ""}${k}=${v}`;
  const child = run(bin, [], JSON.stringify(conf), {
    ...process.env,
    CNI_COMMAND: command,
    CNI_CONTAINERID: env.containerId,
    CNI_NETNS: env.netns,
    CNI_IFNAME: env.ifname,
    CNI_ARGS: args,
    CNI_PATH: env.path.join(":"),
  });
  if (child.status === null) throw new CniError(ErrorCode.IO, `failed to run ${type}: ${child.stderr}`);
  const out = child.stdout.trim();
  if (child.status !== 0) {
    let err: { code?: number; msg?: string; details?: string } = {};
    try {
      err = JSON.parse(out) as typeof err;
    } catch {
      // not JSON: report what it printed
    }
    throw new CniError(
      err.code ?? ErrorCode.Internal,
      err.msg ?? `${type} failed (exit ${child.status}): ${out || child.stderr}`,
      err.details ?? "",
    );
  }
  if (command !== "ADD") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new CniError(ErrorCode.Decode, `${type} printed an invalid result: ${out.slice(0, 200)}`);
  }
  return parsePrevResult(parsed, String(conf["cniVersion"]));
}
