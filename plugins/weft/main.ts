// The weft plugin: a pod on this node's slice of the overlay. It runs bridge and
// host-local in-process with the subnet the agent wrote; the agent does the rest
// (VXLAN routes to other nodes, masquerade to the outside). The bridge's ADD and CHECK
// modules load only for those verbs, as in the bridge plugin.
import { CniError, ErrorCode } from "../../shared/cni/errors";
import type { Plugin } from "../../shared/cni/skeleton";
import { delegateConf, parseWeftConf, readSubnet, subnetPath, type WeftConf } from "./config";
import { bridgeContext, delegateDel } from "./delegate";
import { collect } from "./gc";
import { forgetDelegate, loadDelegate, saveDelegate } from "./saved";

function notReady(conf: WeftConf): CniError {
  return new CniError(ErrorCode.NotReady, `weft agent not ready: ${subnetPath(conf)} missing`);
}

export const weft: Plugin<WeftConf> = {
  name: "weft",
  knownArgs: ["MAC", "IP"],
  entersNetns: true,
  parseConfig: (raw) => parseWeftConf(raw),
  add: async (ctx) => {
    const subnet = readSubnet(ctx.conf);
    if (!subnet) throw notReady(ctx.conf);
    const delegate = delegateConf(ctx.conf, subnet, ctx.raw);
    // Saved first: a DEL after a failed or interrupted ADD must find what to undo.
    saveDelegate(ctx.conf, ctx.env.containerId, ctx.env.ifname, ctx.env.netns, delegate);
    try {
      const { add: bridgeAdd } = await import("../bridge/add");
      return bridgeAdd(bridgeContext(ctx, delegate));
    } catch (e) {
      forgetDelegate(ctx.conf, ctx.env.containerId, ctx.env.ifname);
      throw e;
    }
  },
  del: (ctx) => {
    const { conf, env } = ctx;
    const saved = loadDelegate(conf, env.containerId, env.ifname);
    // subnet.json only without a saved config: what ADD would have used.
    const subnet = saved ? null : readSubnet(conf);
    const delegate = saved ?? (subnet && delegateConf(conf, subnet, ctx.raw));
    // Neither a saved config nor a subnet: ADD never got far enough to leave anything.
    if (!delegate) return;
    delegateDel(ctx, delegate);
  },
  check: async (ctx) => {
    const delegate = loadDelegate(ctx.conf, ctx.env.containerId, ctx.env.ifname);
    if (!delegate) throw new CniError(ErrorCode.Internal, `no saved attachment for ${ctx.env.containerId}/${ctx.env.ifname}`);
    const { check: bridgeCheck } = await import("../bridge/check");
    bridgeCheck(bridgeContext(ctx, delegate));
  },
  status: ({ conf }) => {
    if (!readSubnet(conf)) throw notReady(conf);
  },
  gc: ({ conf, raw, env, validAttachments }) => {
    collect(conf, raw, env, validAttachments);
  },
};
