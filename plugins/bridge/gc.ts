// bridge GC: what no valid attachment names goes — its addresses and (weft's; the reference
// has no GC) its NAT and forward rules and its MAC spoof check, left by a DEL that never came.
import { ipamCallOf, ipamGc } from "../../ipam/index";
import { allSteps } from "../../shared/attempt";
import type { Attachment, PluginContext } from "../../shared/cni/skeleton";
import { podKey } from "../../shared/firewall/common";
import { removeStalePodRules } from "../../shared/firewall/index";
import { unguardStale } from "../../shared/firewall/spoofcheck";
import type { BridgeConf } from "./config";

export function gc(ctx: Pick<PluginContext<BridgeConf>, "conf" | "env" | "raw"> & { validAttachments: Attachment[] }): void {
  const keep = { network: ctx.conf.name, valid: ctx.validAttachments.map((a) => podKey(ctx.conf.name, a.containerID, a.ifname)) };
  allSteps(
    () => ipamGc(ipamCallOf(ctx), ctx.validAttachments),
    () => removeStalePodRules(keep),
    () => unguardStale(keep),
  );
}
