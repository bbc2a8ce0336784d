// Links: look-up, creation (veth, bridge, vxlan), and the few attributes weft changes.
import { deleted, isErrno } from "../errno";
import { formatMac, parseMac } from "../mac";
import { attr, attrMap, cstr, ifinfomsg, strz, u32 } from "./encoding";
import { NLM_F, NetlinkSocket, withSocket, type NetlinkMessage } from "./socket";

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const AF_UNSPEC = 0;
const RTNLGRP_LINK = 1;
/** What a delete of a link that is not there fails with. */
const NO_LINK = ["ENODEV"];

const IFF_UP = 0x1;
const IFF_PROMISC = 0x100;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const IFLA_INFO_SLAVE_DATA = 5;
const VETH_INFO_PEER = 1;

export interface Link {
  index: number;
  name: string;
  mac: string;
  mtu: number;
  up: boolean;
  promisc: boolean;
  /** ifindex of the bridge this link is enslaved to */
  master?: number;
  /** IFLA_INFO_KIND: "veth", "bridge", "vxlan", … (absent for physical devices) */
  kind?: string;
  /** raw IFLA_INFO_DATA of the kind, for kind-specific parsing */
  infoData?: Buffer;
  /** raw IFLA_INFO_SLAVE_DATA (bridge port attributes for bridge ports) */
  slaveData?: Buffer;
  /** for a veth: the peer's ifindex (in the peer's netns) */
  peerIndex?: number;
}

/** The link attributes weft sets. */
interface LinkAttrs {
  ifname?: string;
  mtu?: number;
  address?: Buffer;
  master?: number;
  /** move the link into the netns this fd refers to */
  netnsFd?: number;
}

/** Device flags weft changes (ifi_flags / ifi_change bits). */
interface DeviceFlags {
  up?: boolean;
  promisc?: boolean;
}

function deviceFlags(f: DeviceFlags): number {
  return (f.up ? IFF_UP : 0) | (f.promisc ? IFF_PROMISC : 0);
}

function linkAttrs(a: LinkAttrs): Buffer[] {
  const out: Buffer[] = [];
  if (a.ifname !== undefined) out.push(attr(IFLA_IFNAME, strz(a.ifname)));
  if (a.mtu !== undefined) out.push(attr(IFLA_MTU, u32(a.mtu)));
  if (a.address) out.push(attr(IFLA_ADDRESS, a.address));
  if (a.master !== undefined) out.push(attr(IFLA_MASTER, u32(a.master)));
  if (a.netnsFd !== undefined) out.push(attr(IFLA_NET_NS_FD, u32(a.netnsFd)));
  return out;
}

function linkPayload(hdr: { index?: number; flags?: number; change?: number }, attrs: LinkAttrs, extra: Buffer[] = []): Buffer[] {
  return [ifinfomsg.format({ family: AF_UNSPEC, ...hdr }), ...linkAttrs(attrs), ...extra];
}

/**
 * IFLA_LINKINFO with a kind and optional kind data (nested attributes, pre-encoded), or
 * without a kind, only port (slave) data: the kernel then changes just the port's options.
 */
export function linkInfo(kind: string | undefined, data?: Uint8Array | Uint8Array[], slave?: { kind: string; data: Buffer }): Buffer {
  const parts: Buffer[] = [];
  if (kind !== undefined) parts.push(attr(IFLA_INFO_KIND, strz(kind)));
  if (data) parts.push(attr(IFLA_INFO_DATA, data));
  if (slave) parts.push(attr(IFLA_INFO_SLAVE_KIND, strz(slave.kind)), attr(IFLA_INFO_SLAVE_DATA, slave.data, true));
  return attr(IFLA_LINKINFO, parts, true);
}

/** The name of the link an RTM_NEWLINK/RTM_DELLINK notification is about; null for other messages or one naming none. */
export function linkNotificationName(m: NetlinkMessage): string | null {
  if (m.type !== RTM_NEWLINK && m.type !== RTM_DELLINK) return null;
  const name = ifinfomsg.findAttr(m.data, IFLA_IFNAME);
  return name ? cstr(name) : null;
}

function toLink(m: NetlinkMessage): Link {
  const h = ifinfomsg.parse(m.data);
  const a = ifinfomsg.attrs(m.data);
  const name = a.get(IFLA_IFNAME);
  const address = a.get(IFLA_ADDRESS);
  const mtu = a.get(IFLA_MTU);
  const link: Link = {
    index: h.index,
    name: name ? cstr(name) : "",
    mac: address ? formatMac(address) : "",
    mtu: mtu ? mtu.readUInt32LE(0) : 0,
    up: (h.flags & IFF_UP) !== 0,
    promisc: (h.flags & IFF_PROMISC) !== 0,
  };
  const master = a.get(IFLA_MASTER)?.readUInt32LE(0);
  if (master) link.master = master;
  const linkinfo = a.get(IFLA_LINKINFO);
  if (linkinfo) {
    const info = attrMap(linkinfo);
    const kind = info.get(IFLA_INFO_KIND);
    const data = info.get(IFLA_INFO_DATA);
    const slaveData = info.get(IFLA_INFO_SLAVE_DATA);
    if (kind) link.kind = cstr(kind);
    if (data) link.infoData = data;
    if (slaveData) link.slaveData = slaveData;
  }
  const peer = a.get(IFLA_LINK);
  if (peer) link.peerIndex = peer.readUInt32LE(0);
  return link;
}

export function getLinkByName(nl: NetlinkSocket, name: string): Link | null {
  try {
    return nl.request(`get link ${name}`, RTM_GETLINK, 0, linkPayload({}, { ifname: name })).map(toLink)[0] ?? null;
  } catch (e) {
    if (isErrno(e, "ENODEV")) return null;
    throw e;
  }
}

export function getLinkByIndex(nl: NetlinkSocket, index: number): Link | null {
  try {
    return nl.request(`get link #${index}`, RTM_GETLINK, 0, linkPayload({ index }, {})).map(toLink)[0] ?? null;
  } catch (e) {
    if (isErrno(e, "ENODEV")) return null;
    throw e;
  }
}

export function listLinks(nl: NetlinkSocket): Link[] {
  return nl.request("list links", RTM_GETLINK, NLM_F.DUMP, linkPayload({}, {})).map(toLink);
}

/** Like getLinkByName but the link must exist. */
export function requireLink(nl: NetlinkSocket, name: string): Link {
  const link = getLinkByName(nl, name);
  if (!link) throw new Error(`link "${name}" not found`);
  return link;
}

export interface NewLinkOptions {
  mtu?: number;
  /** text ("02:00:…"), or the 6 bytes themselves */
  mac?: string | Buffer;
  /** the bridge the new link is a port of */
  master?: number;
}

function commonAttrs(name: string, o: NewLinkOptions): LinkAttrs {
  const a: LinkAttrs = { ifname: name };
  if (o.mtu) a.mtu = o.mtu;
  if (o.mac) a.address = typeof o.mac === "string" ? parseMac(o.mac) : o.mac;
  if (o.master) a.master = o.master;
  return a;
}

/** Creates a link of `kind` (fails with EEXIST when the name is taken). */
export function createLink(nl: NetlinkSocket, name: string, kind: string, o: NewLinkOptions & { data?: Uint8Array | Uint8Array[] } = {}): void {
  const attrs = commonAttrs(name, o);
  nl.request(`create ${kind} ${name}`, RTM_NEWLINK, NLM_F.CREATE | NLM_F.EXCL, linkPayload({}, attrs, [linkInfo(kind, o.data)]));
}

export interface VethOptions extends NewLinkOptions {
  peerName: string;
  /** the 6 bytes */
  peerMac?: Buffer;
  /** fd of the netns the peer goes into (the peer is created directly there) */
  peerNetnsFd?: number;
  /** bring this end up in the same request */
  up?: boolean;
}

/** Creates a veth pair `name` ⇄ `peerName`; VETH_INFO_PEER holds the peer's own ifinfomsg and attributes. */
export function createVeth(nl: NetlinkSocket, name: string, o: VethOptions): void {
  const peerAttrs: LinkAttrs = { ifname: o.peerName };
  if (o.mtu) peerAttrs.mtu = o.mtu;
  if (o.peerMac) peerAttrs.address = o.peerMac;
  if (o.peerNetnsFd !== undefined) peerAttrs.netnsFd = o.peerNetnsFd;
  const peer = attr(VETH_INFO_PEER, linkPayload({}, peerAttrs));
  const info = linkInfo("veth", peer);
  const attrs = commonAttrs(name, o);
  const hdr = o.up ? { flags: IFF_UP, change: IFF_UP } : {};
  nl.request(`create veth ${name}/${o.peerName}`, RTM_NEWLINK, NLM_F.CREATE | NLM_F.EXCL, linkPayload(hdr, attrs, [info]));
}

/** Changes attributes of an existing link (RTM_NEWLINK without CREATE modifies in place). */
export function modifyLink(nl: NetlinkSocket, index: number, attrs: LinkAttrs, flags?: { set: DeviceFlags; change: DeviceFlags }, extra: Buffer[] = []): void {
  const data = flags ? { index, flags: deviceFlags(flags.set), change: deviceFlags(flags.change) } : { index };
  nl.request(`change link #${index}`, RTM_NEWLINK, 0, linkPayload(data, attrs, extra));
}

export function setLinkUp(nl: NetlinkSocket, index: number, up = true): void {
  modifyLink(nl, index, {}, { set: up ? { up: true } : {}, change: { up: true } });
}

export function setPromisc(nl: NetlinkSocket, index: number, on: boolean): void {
  modifyLink(nl, index, {}, { set: on ? { promisc: true } : {}, change: { promisc: true } });
}

export function setMtu(nl: NetlinkSocket, index: number, mtu: number): void {
  modifyLink(nl, index, { mtu });
}

export function setMac(nl: NetlinkSocket, index: number, mac: string): void {
  modifyLink(nl, index, { address: parseMac(mac) });
}

export function deleteLink(nl: NetlinkSocket, index: number): void {
  nl.request(`delete link #${index}`, RTM_DELLINK, 0, linkPayload({ index }, {}));
}

/** Deletes a link by name; false when there was none (DEL must be idempotent). */
export function deleteLinkByName(nl: NetlinkSocket, name: string): boolean {
  return deleted(NO_LINK, () => nl.request(`delete link ${name}`, RTM_DELLINK, 0, linkPayload({}, { ifname: name })));
}

/**
 * Deletes a link by name in `netnsPath` and returns once the kernel has unlisted it (its
 * RTM_DELLINK notification): the name is free, and a veth's other end is gone too. The
 * kernel frees the device only after an RCU barrier, 15-30 ms here, which a child
 * process sits out instead of the caller (NetlinkSocket.requestUntil). False when there
 * was none. The socket is its own: joined to the link group, it would hand a later request
 * notifications carrying that request's sequence number.
 */
export function unlistLinkByName(netnsPath: string, name: string): boolean {
  return withSocket(netnsPath, (nl) => {
    nl.join(RTNLGRP_LINK);
    const unlisted = (m: NetlinkMessage): boolean => m.type === RTM_DELLINK && ifinfomsg.parse(m.data).family === AF_UNSPEC && linkNotificationName(m) === name;
    return deleted(NO_LINK, () => nl.requestUntil(`delete link ${name}`, RTM_DELLINK, 0, linkPayload({}, { ifname: name }), unlisted));
  });
}

