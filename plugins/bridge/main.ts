// The bridge plugin: pods on a Linux bridge, wired with veth pairs.
import type { Plugin } from "../../shared/cni/skeleton";
import { ipamGc } from "../../ipam/index";
import { add } from "./add";
import { check } from "./check";
import { type BridgeConf, parseBridgeConf } from "./config";
import { del } from "./del";

export const bridge: Plugin<BridgeConf> = {
  name: "bridge",
  knownArgs: ["MAC", "IP"],
  parseConfig: (raw, env) => parseBridgeConf(raw, env.args),
  add,
  del,
  check,
  gc: ({ conf, raw, validAttachments }) => void ipamGc(raw, conf.name, validAttachments),
};
