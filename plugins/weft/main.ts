// The weft plugin: a pod on this node's slice of the overlay. It runs bridge and
// host-local in-process with the subnet the agent wrote; the agent does the rest
// (VXLAN routes to other nodes, masquerade to the outside). The bridge's ADD and CHECK
// modules load only for those verbs, as in the bridge plugin.
import { CniError, ErrorCode, IncompleteRollback } from "../../shared/cni/errors";
import { requirePrevResult, type Plugin } from "../../shared/cni/skeleton";
import { delegateConf, notReady, parseWeftConf, readSubnet, type Subnet, type WeftConf } from "./config";
import { bridgeContext, delegateDel } from "./delegate";
import { forgetDelegate, loadDelegate, saveDelegate, withAttachmentLock } from "./saved";

/** subnet.json, or null where it is missing or unreadable (for the verbs that must not fail on it). */
function subnetIfValid(conf: WeftConf): Subnet | null {
  try {
    return readSubnet(conf);
  } catch {
    return null;
  }
}

export const weft: Plugin<WeftConf> = {
  name: "weft",
  knownArgs: ["MAC", "IP"],
  entersNetns: true,
  parseConfig: (raw) => parseWeftConf(raw),
  // ADD and DEL hold the attachment's lock throughout (saved.ts): the agent's orphan pass
  // never acts on an attachment while they do.
  add: async (ctx) => {
    const subnet = readSubnet(ctx.conf);
    if (!subnet) throw notReady(ctx.conf);
    const delegate = delegateConf(ctx.conf, subnet, ctx.raw);
    const { add: bridgeAdd } = await import("../bridge/add");
    return withAttachmentLock(ctx.conf, ctx.env.containerId, ctx.env.ifname, true, () => {
      // Saved first: a DEL after a failed or interrupted ADD must find what to undo.
      saveDelegate(ctx.conf, ctx.env.containerId, ctx.env.ifname, ctx.env.netns, delegate);
      try {
        return bridgeAdd(bridgeContext(ctx, delegate));
      } catch (e) {
        // Kept while anything may be left: the runtime's DEL (or the agent's orphan pass) needs it.
        if (!(e instanceof IncompleteRollback)) forgetDelegate(ctx.conf, ctx.env.containerId, ctx.env.ifname);
        throw e;
      }
    });
  },
  del: (ctx) => {
    const { conf, env } = ctx;
    withAttachmentLock(conf, env.containerId, env.ifname, false, () => {
      const saved = loadDelegate(conf, env.containerId, env.ifname);
      // subnet.json only without a saved config: what ADD would have used. An ADD that left
      // anything left its saved config (written first, kept while a rollback is incomplete),
      // so without one DEL must not fail on a subnet.json that cannot be read.
      const subnet = saved ? null : subnetIfValid(conf);
      const delegate = saved ?? (subnet && delegateConf(conf, subnet, ctx.raw));
      if (delegate) delegateDel(ctx, delegate);
    });
  },
  check: async (ctx) => {
    requirePrevResult(ctx);
    const delegate = loadDelegate(ctx.conf, ctx.env.containerId, ctx.env.ifname);
    if (!delegate) throw new CniError(ErrorCode.Internal, `no saved attachment for ${ctx.env.containerId}/${ctx.env.ifname}`);
    const { check: bridgeCheck } = await import("../bridge/check");
    bridgeCheck(bridgeContext(ctx, delegate));
  },
  status: ({ conf }) => {
    if (!readSubnet(conf)) throw notReady(conf);
  },
  // Loaded for GC alone, as the bridge's: ADD and DEL never evaluate the bridge's GC module.
  gc: async ({ conf, raw, env, validAttachments }) => (await import("./gc")).collect(conf, raw, env, validAttachments),
};
