// The weft plugin's calls into the bridge plugin, in-process, with the delegated config
// (built from subnet.json at ADD, saved per attachment for DEL and CHECK).
import { OVERLAY_FORWARD_CHAIN, OVERLAY_TABLE } from "../../shared/firewall/common";
import type { PluginContext } from "../../shared/cni/skeleton";
import { parseBridgeConf, type BridgeConf } from "../bridge/config";
import { del as bridgeDel } from "../bridge/del";
import type { WeftConf } from "./config";
import { forgetDelegate } from "./saved";

export function bridgeContext(ctx: PluginContext<WeftConf>, raw: Record<string, unknown>): PluginContext<BridgeConf> {
  const out: PluginContext<BridgeConf> = {
    env: ctx.env,
    // While FORWARD drops, the agent marks the whole cluster CIDR, naming this node's pod CIDR
    // (agent/overlay-rules.ts): a pod needs its own mark only until the agent's next
    // reconcile has put that in place.
    conf: { ...parseBridgeConf(raw, ctx.env.args), forwardMarkedBy: { table: OVERLAY_TABLE, chain: OVERLAY_FORWARD_CHAIN } },
    raw,
    stdinVersion: ctx.stdinVersion,
  };
  if (ctx.prevResult) out.prevResult = ctx.prevResult;
  return out;
}

/**
 * DEL of one attachment: bridge DEL with its delegated config, then its saved file (kept
 * when the DEL throws, so a later pass can retry).
 */
export function delegateDel(ctx: PluginContext<WeftConf>, delegate: Record<string, unknown>): void {
  bridgeDel(bridgeContext(ctx, delegate));
  forgetDelegate(ctx.conf, ctx.env.containerId, ctx.env.ifname);
}
