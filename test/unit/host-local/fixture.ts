// A throwaway data directory per test, and terse request builders.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach } from "vitest";
import { parseHostLocalConfig, type IpamRequest } from "../../../ipam/host-local/index";

export const NET = "testnet";

/** Registers per-test setup and cleanup; call once at the top of a test file. */
export function useDataDir(): { readonly dir: string; readonly netDir: string } {
  const state = { dir: "", netDir: "" };
  beforeEach(() => {
    state.dir = mkdtempSync(join(tmpdir(), "weft-host-local-"));
    state.netDir = join(state.dir, NET);
  });
  afterEach(() => rmSync(state.dir, { recursive: true, force: true }));
  return state;
}

export function request(
  dataDir: string,
  ipam: Record<string, unknown>,
  containerId: string,
  more: Partial<IpamRequest> = {},
): IpamRequest {
  return {
    networkName: NET,
    containerId,
    ifname: "eth0",
    ipam: parseHostLocalConfig({ type: "host-local", dataDir, ...ipam }, NET),
    args: new Map(),
    ...more,
  };
}

/** The network directory's files and their exact contents. */
export function filesOf(netDir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(netDir).sort()) out[f] = readFileSync(join(netDir, f), "latin1");
  return out;
}
