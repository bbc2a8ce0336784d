// The CNI_* environment: which verb, and the per-verb parameters it requires.
import { isTrue, parseCniArgs } from "./args";
import { CniError, ErrorCode } from "./errors";

export type CniCommand = "ADD" | "DEL" | "CHECK" | "VERSION" | "STATUS" | "GC";

export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  args: Map<string, string>;
  path: string[];
  /** CNI_NETNS_OVERRIDE "1" or "true": the caller means CNI_NETNS to be the plugin's own netns */
  netnsOverride: boolean;
}

// Which variables must be non-empty per verb. DEL may lack a netns (it may be gone
// already) and must still clean up; STATUS and GC concern no container at all.
const REQUIRED: Record<CniCommand, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME"],
  VERSION: [],
  STATUS: [],
  GC: [],
};

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;

function isCommand(s: string): s is CniCommand {
  return Object.hasOwn(REQUIRED, s);
}

function validateContainerId(id: string): void {
  if (!CONTAINER_ID.test(id)) {
    throw new CniError(ErrorCode.InvalidEnv, `CNI_CONTAINERID has invalid characters (must match ${CONTAINER_ID.source})`, id);
  }
}

// Linux rules: IFNAMSIZ is 16 bytes including the NUL, and "/", ":" and whitespace
// would break sysfs paths and alias syntax.
function validateIfname(name: string): void {
  const bytes = Buffer.byteLength(name);
  if (bytes === 0 || bytes > 15) {
    throw new CniError(ErrorCode.InvalidEnv, `CNI_IFNAME must be 1-15 bytes long, got ${bytes}`, name);
  }
  if (name === "." || name === "..") {
    throw new CniError(ErrorCode.InvalidEnv, `CNI_IFNAME must not be "." or ".."`, name);
  }
  if (/[/:\s]/.test(name)) {
    throw new CniError(ErrorCode.InvalidEnv, `CNI_IFNAME must not contain "/", ":" or whitespace`, name);
  }
}

export function readEnv(env: NodeJS.ProcessEnv = process.env): CniEnv {
  const command = env["CNI_COMMAND"] ?? "";
  if (command === "") throw new CniError(ErrorCode.InvalidEnv, "required env variables [CNI_COMMAND] missing");
  if (!isCommand(command)) throw new CniError(ErrorCode.InvalidEnv, `unknown CNI_COMMAND: ${command}`);

  // libcni probes VERSION with dummy values; nothing else may be looked at.
  if (command === "VERSION") {
    return { command, containerId: "", netns: "", ifname: "", args: new Map(), path: [], netnsOverride: false };
  }

  const missing = REQUIRED[command].filter((k) => !env[k]);
  if (missing.length > 0) {
    throw new CniError(ErrorCode.InvalidEnv, `required env variables [${missing.join(",")}] missing`);
  }

  const containerId = env["CNI_CONTAINERID"] ?? "";
  const ifname = env["CNI_IFNAME"] ?? "";
  if (command === "ADD" || command === "CHECK" || command === "DEL") {
    validateContainerId(containerId);
    validateIfname(ifname);
  }
  const argsText = env["CNI_ARGS"] ?? "";
  let args: Map<string, string> | undefined;
  return {
    command,
    containerId,
    netns: env["CNI_NETNS"] ?? "",
    ifname,
    // Parsed on first use: a plugin that reads none (loopback) never fails on them.
    get args() {
      return (args ??= parseCniArgs(argsText));
    },
    path: (env["CNI_PATH"] ?? "").split(":").filter((p) => p !== ""),
    netnsOverride: isTrue(env["CNI_NETNS_OVERRIDE"]),
  };
}
