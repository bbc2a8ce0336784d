// Linux bridge specifics: creating a bridge and setting per-port options.
import { attr, ifinfomsg, u16, u8 } from "./encoding";
import { deleted } from "../errno";
import type { NetlinkSocket } from "./socket";
import { createLink, linkInfo, modifyLink, type NewLinkOptions } from "./link";

const RTM_NEWLINK = 16;
const RTM_SETLINK = 19;
const RTM_DELLINK = 17;
const AF_BRIDGE = 7;
const IFLA_AF_SPEC = 26;
const IFLA_BR_VLAN_FILTERING = 7;
const IFLA_BRPORT_MODE = 4;
const IFLA_BRPORT_ISOLATED = 33;
const IFLA_BRIDGE_VLAN_INFO = 2;
const BRIDGE_VLAN_INFO_PVID = 2;
const BRIDGE_VLAN_INFO_UNTAGGED = 4;
const BRIDGE_VLAN_INFO_RANGE_BEGIN = 8;
const BRIDGE_VLAN_INFO_RANGE_END = 16;
/** IFLA_BRIDGE_FLAGS with BRIDGE_FLAGS_SELF: address the bridge device itself, not a port. */
const IFLA_BRIDGE_FLAGS = 0;
const BRIDGE_FLAGS_SELF = 2;

export function createBridge(nl: NetlinkSocket, name: string, o: NewLinkOptions & { vlanFiltering?: boolean } = {}): void {
  const data = o.vlanFiltering ? attr(IFLA_BR_VLAN_FILTERING, u8(1)) : undefined;
  createLink(nl, name, "bridge", { ...o, ...(data ? { data } : {}) });
}

export function setVlanFiltering(nl: NetlinkSocket, index: number, on: boolean): void {
  modifyLink(nl, index, {}, undefined, [linkInfo("bridge", attr(IFLA_BR_VLAN_FILTERING, u8(on ? 1 : 0)))]);
}

/**
 * Bridge port options, set through IFLA_INFO_SLAVE_DATA on RTM_NEWLINK with no
 * IFLA_INFO_KIND (the port's own kind, veth, …, is left alone), in one request:
 * - hairpin: the port may send frames back out where they came in (a pod reaching itself
 *   through a service IP);
 * - isolated: the port forwards only to ports that are not isolated (the bridge itself, an
 *   uplink), never to another isolated one.
 */
export function setBridgePort(nl: NetlinkSocket, index: number, o: { hairpin?: boolean; isolated?: boolean }): void {
  const data: Buffer[] = [];
  if (o.hairpin !== undefined) data.push(attr(IFLA_BRPORT_MODE, u8(o.hairpin ? 1 : 0)));
  if (o.isolated !== undefined) data.push(attr(IFLA_BRPORT_ISOLATED, u8(o.isolated ? 1 : 0)));
  const slave = { kind: "bridge", data: Buffer.concat(data) };
  nl.request(`set bridge port options on #${index}`, RTM_NEWLINK, 0, [ifinfomsg.format({ index }), linkInfo(undefined, undefined, slave)]);
}

/** struct bridge_vlan_info: u16 flags, u16 vid. */
function vlanInfo(vid: number, flags: number): Buffer {
  return attr(IFLA_BRIDGE_VLAN_INFO, [u16(flags), u16(vid)]);
}

/** IFLA_AF_SPEC of an AF_BRIDGE request; `self` addresses the bridge device rather than a port. */
function bridgeSpec(index: number, vlans: Buffer[], self?: boolean): Buffer[] {
  const spec = self ? [attr(IFLA_BRIDGE_FLAGS, u16(BRIDGE_FLAGS_SELF)), ...vlans] : vlans;
  return [ifinfomsg.format({ family: AF_BRIDGE, index }), attr(IFLA_AF_SPEC, spec, true)];
}

/**
 * Adds VLAN `vid` to a bridge port (or, with `self`, to the bridge device) as its PVID,
 * egress untagged: what `bridge vlan add vid N dev X pvid untagged [self]` does.
 */
export function addPortVlan(nl: NetlinkSocket, index: number, vid: number, o: { self?: boolean } = {}): void {
  const vlan = vlanInfo(vid, BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED);
  nl.request(`add vlan ${vid} on #${index}`, RTM_SETLINK, 0, bridgeSpec(index, [vlan], o.self));
}

/**
 * Adds the VLANs of inclusive `[first, last]` ranges to a bridge port, tagged (a trunk):
 * `bridge vlan add vid first-last dev X` for each range, all in one request.
 */
export function addPortVlanRanges(nl: NetlinkSocket, index: number, ranges: ReadonlyArray<readonly [number, number]>): void {
  const vlans: Buffer[] = [];
  let text = "";
  for (const [first, last] of ranges) {
    if (first === last) vlans.push(vlanInfo(first, 0));
    else vlans.push(vlanInfo(first, BRIDGE_VLAN_INFO_RANGE_BEGIN), vlanInfo(last, BRIDGE_VLAN_INFO_RANGE_END));
    text += `${text ? "," : ""}${first === last ? first : `${first}-${last}`}`;
  }
  nl.request(`add vlans ${text} on #${index}`, RTM_SETLINK, 0, bridgeSpec(index, vlans));
}

/** Removes VLAN `vid` from a bridge port; false when the port does not have it. */
export function deletePortVlan(nl: NetlinkSocket, index: number, vid: number, o: { self?: boolean } = {}): boolean {
  return deleted(["ENOENT"], () => nl.request(`delete vlan ${vid} on #${index}`, RTM_DELLINK, 0, bridgeSpec(index, [vlanInfo(vid, 0)], o.self)));
}

