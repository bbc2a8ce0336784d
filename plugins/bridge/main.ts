// The bridge plugin: pods on a Linux bridge, wired with veth pairs.
// Each verb's module loads when called: DEL, the other common call, then skips ADD's
// modules and their initialisation (~0.4 ms).
import type { Plugin } from "../../shared/cni/skeleton";
import { type BridgeConf, parseBridgeConf } from "./config";

export const bridge: Plugin<BridgeConf> = {
  name: "bridge",
  knownArgs: ["MAC", "IP"],
  entersNetns: true,
  parseConfig: (raw, env) => parseBridgeConf(raw, env.args),
  add: async (ctx) => (await import("./add")).add(ctx),
  del: async (ctx) => (await import("./del")).del(ctx),
  check: async (ctx) => (await import("./check")).check(ctx),
  gc: async (ctx) => (await import("./gc")).gc(ctx),
  status: async (ctx) => {
    // Layer 2, or host-local in-process: nothing that could be unready, nothing to load.
    const type = ctx.conf.ipam.type;
    if (type === "" || type === "host-local") return;
    const { ipamCallOf, ipamStatus } = await import("../../ipam/index");
    ipamStatus(ipamCallOf(ctx));
  },
};
