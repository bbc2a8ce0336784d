// host-local as a standalone IPAM plugin (interface plugins run it in-process instead).
import type { Plugin } from "../../shared/cni/skeleton";
import { ipamAdd, ipamCallOf as call, ipamCheck, ipamDel, ipamGc } from "../../ipam/index";

interface HostLocalNetConf {
  cniVersion: string;
  name: string;
}

export const hostLocal: Plugin<HostLocalNetConf> = {
  name: "host-local",
  knownArgs: ["IP"],
  // The ipam section is validated by the allocator's own schema on first use.
  parseConfig: (raw) => ({ cniVersion: String(raw["cniVersion"]), name: String(raw["name"]) }),
  add: (ctx) => ipamAdd(call(ctx)),
  del: (ctx) => ipamDel(call(ctx)),
  check: (ctx) => ipamCheck(call(ctx)),
  gc: (ctx) => ipamGc(call(ctx), ctx.validAttachments),
};
