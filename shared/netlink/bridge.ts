// Linux bridge specifics: creating a bridge and setting per-port options.
import { parseAttributes } from "netlink/dist/structs.js";
import { attr, NLM_F, NetlinkSocket } from "./socket";
import { createLink, linkInfo, modifyLink, u8, type NewLinkOptions } from "./link";

const RTM_NEWLINK = 16;
const RTM_SETLINK = 19;
const RTM_DELLINK = 17;
const AF_BRIDGE = 7;
const IFLA_AF_SPEC = 26;
const IFLA_BR_VLAN_FILTERING = 7;
const IFLA_BRPORT_MODE = 4;
const IFLA_BRIDGE_VLAN_INFO = 2;
const BRIDGE_VLAN_INFO_PVID = 2;
const BRIDGE_VLAN_INFO_UNTAGGED = 4;
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
 * Hairpin mode lets a port send frames back out of the port they came in on (a pod
 * reaching itself through a service IP). Set through IFLA_INFO_SLAVE_DATA on RTM_NEWLINK:
 * the codec's AF_BRIDGE protinfo writer drops NLA_F_NESTED and the kernel rejects it.
 */
export function setHairpin(nl: NetlinkSocket, index: number, on: boolean): void {
  nl.request(
    `set hairpin on #${index}`,
    RTM_NEWLINK,
    0,
    [ifinfomsg(0, index), linkInfoSlave(attr(IFLA_BRPORT_MODE, u8(on ? 1 : 0)))],
  );
}

function linkInfoSlave(data: Buffer): Buffer {
  const IFLA_LINKINFO = 18;
  const IFLA_INFO_SLAVE_KIND = 4;
  const IFLA_INFO_SLAVE_DATA = 5;
  return attr(
    IFLA_LINKINFO,
    [attr(IFLA_INFO_SLAVE_KIND, Buffer.from("bridge\0")), attr(IFLA_INFO_SLAVE_DATA, data, true)],
    true,
  );
}

function ifinfomsg(family: number, index: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(family, 0);
  b.writeInt32LE(index, 4);
  return b;
}

function vlanInfo(vid: number, flags: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16LE(flags, 0);
  b.writeUInt16LE(vid, 2);
  return attr(IFLA_BRIDGE_VLAN_INFO, b);
}

/**
 * Adds VLAN `vid` to a bridge port (or, with `self`, to the bridge device) as its PVID,
 * egress untagged: what `bridge vlan add vid N dev X pvid untagged [self]` does.
 */
export function addPortVlan(nl: NetlinkSocket, index: number, vid: number, o: { self?: boolean } = {}): void {
  const spec = [vlanInfo(vid, BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED)];
  if (o.self) spec.unshift(attr(IFLA_BRIDGE_FLAGS, Buffer.from([BRIDGE_FLAGS_SELF, 0])));
  nl.request(`add vlan ${vid} on #${index}`, RTM_SETLINK, 0, [ifinfomsg(AF_BRIDGE, index), attr(IFLA_AF_SPEC, spec, true)]);
}

export function deletePortVlan(nl: NetlinkSocket, index: number, vid: number, o: { self?: boolean } = {}): void {
  const spec = [vlanInfo(vid, 0)];
  if (o.self) spec.unshift(attr(IFLA_BRIDGE_FLAGS, Buffer.from([BRIDGE_FLAGS_SELF, 0])));
  nl.request(`delete vlan ${vid} on #${index}`, RTM_DELLINK, 0, [ifinfomsg(AF_BRIDGE, index), attr(IFLA_AF_SPEC, spec, true)]);
}

/** VLANs configured on a bridge port, read from the AF_BRIDGE link dump. */
export function portVlans(nl: NetlinkSocket, index: number): Array<{ vid: number; pvid: boolean; untagged: boolean }> {
  const RTM_GETLINK = 18;
  const IFLA_EXT_MASK = 29;
  const RTEXT_FILTER_BRVLAN = 2;
  const ext = Buffer.alloc(4);
  ext.writeUInt32LE(RTEXT_FILTER_BRVLAN);
  const out: Array<{ vid: number; pvid: boolean; untagged: boolean }> = [];
  for (const m of nl.request("list bridge vlans", RTM_GETLINK, NLM_F.DUMP, [ifinfomsg(AF_BRIDGE, 0), attr(IFLA_EXT_MASK, ext)])) {
    if (m.data.readInt32LE(4) !== index) continue;
    parseAttributes(m.data.subarray(16), (spec) => {
      if (spec.type !== IFLA_AF_SPEC) return;
      parseAttributes(spec.data, ({ type, data: d }) => {
        if (type !== IFLA_BRIDGE_VLAN_INFO) return;
        const flags = d.readUInt16LE(0);
        out.push({ vid: d.readUInt16LE(2), pvid: !!(flags & BRIDGE_VLAN_INFO_PVID), untagged: !!(flags & BRIDGE_VLAN_INFO_UNTAGGED) });
      });
    });
  }
  return out;
}

