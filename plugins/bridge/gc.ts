// bridge GC: what no valid attachment names goes — its addresses and (weft's; the reference
// has no GC) its NAT and forward rules and its MAC spoof check, left by a DEL that never came.
import { ipamCallOf, ipamGc } from "../../ipam/index";
import { allSteps } from "../../shared/attempt";
import type { Attachment, PluginContext } from "../../shared/cni/skeleton";
import { type Keep, podKey } from "../../shared/firewall/common";
import { removeStalePodRules } from "../../shared/firewall/index";
import { unguardStale } from "../../shared/firewall/spoofcheck";
import type { BridgeConf } from "./config";

export function gc(ctx: Pick<PluginContext<BridgeConf>, "conf" | "env" | "raw"> & { validAttachments: readonly Attachment[] }): void {
  // Built inside the steps (podKey may throw; the IPAM step must still run), once.
  let kept: Keep | undefined;
  const keep = (): Keep => (kept ??= { network: ctx.conf.name, valid: ctx.validAttachments.map((a) => podKey(ctx.conf.name, a.containerID, a.ifname)) });
  // Rules first and addresses last, as DEL: rules found by address must not be those of a
  // new pod that took a freed address meanwhile.
  allSteps(
    () => removeStalePodRules(keep()),
    () => unguardStale(keep()),
    () => {
      if (ctx.conf.ipam.type) ipamGc(ipamCallOf(ctx), ctx.validAttachments);
    },
  );
}
