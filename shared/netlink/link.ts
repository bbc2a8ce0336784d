// Links: look-up, creation (veth, bridge, vxlan), and the few attributes weft changes.
import { formatLinkMessage, parseLinkMessage, type LinkMessage } from "netlink/dist/rt/structs.js";
import { formatInfo, parseInfo, type LinkAttrs } from "netlink/dist/rt/ifla.js";
import type { DeviceFlags } from "netlink/dist/rt/gen_structs.js";
import { attr, encode, isErrno, NLM_F, NetlinkSocket } from "./socket";

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const AF_UNSPEC = 0;

const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_ADDRESS = 1;
const IFLA_NET_NS_FD = 28;
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

export function formatMac(b: Buffer): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

export function parseMac(s: string): Buffer {
  const parts = s.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new Error(`invalid MAC address "${s}"`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

function linkPayload(data: LinkMessage["data"], attrs: LinkAttrs, extra: Buffer[] = []): Buffer[] {
  return [encode((s) => formatLinkMessage({ kind: "link", data: { family: AF_UNSPEC, ...data }, attrs }, s)), ...extra];
}

/** IFLA_LINKINFO with a kind and optional kind data (nested attributes, pre-encoded). */
export function linkInfo(kind: string, data?: Buffer, slave?: { kind: string; data: Buffer }): Buffer {
  return attr(
    18, // IFLA_LINKINFO
    encode(
      formatInfo({
        kind,
        ...(data ? { data } : {}),
        ...(slave ? { slaveKind: slave.kind, slaveData: slave.data } : {}),
      }),
    ),
    true,
  );
}

function toLink(m: LinkMessage): Link {
  const a = m.attrs;
  const flags: DeviceFlags = m.data.flags ?? {};
  const link: Link = {
    index: m.data.index ?? 0,
    name: a.ifname ?? "",
    mac: a.address ? formatMac(a.address) : "",
    mtu: a.mtu ?? 0,
    up: !!flags.up,
    promisc: !!flags.promisc,
  };
  if (a.master) link.master = a.master;
  if (a.linkinfo) {
    const info = parseInfo(a.linkinfo);
    if (info.kind) link.kind = info.kind;
    if (info.data) link.infoData = info.data;
    if (info.slaveData) link.slaveData = info.slaveData;
  }
  if (a.link !== undefined) link.peerIndex = a.link.readUInt32LE(0);
  return link;
}

function parseLinks(msgs: { data: Buffer }[]): Link[] {
  return msgs.map((m) => toLink(parseLinkMessage(m.data)));
}

export function getLinkByName(nl: NetlinkSocket, name: string): Link | null {
  try {
    return parseLinks(nl.request(`get link ${name}`, RTM_GETLINK, 0, linkPayload({}, { ifname: name })))[0] ?? null;
  } catch (e) {
    if (isErrno(e, "ENODEV")) return null;
    throw e;
  }
}

export function getLinkByIndex(nl: NetlinkSocket, index: number): Link | null {
  try {
    return parseLinks(nl.request(`get link #${index}`, RTM_GETLINK, 0, linkPayload({ index }, {})))[0] ?? null;
  } catch (e) {
    if (isErrno(e, "ENODEV")) return null;
    throw e;
  }
}

export function listLinks(nl: NetlinkSocket): Link[] {
  return parseLinks(nl.request("list links", RTM_GETLINK, NLM_F.DUMP, linkPayload({}, {})));
}

/** Like getLinkByName but the link must exist. */
export function requireLink(nl: NetlinkSocket, name: string): Link {
  const link = getLinkByName(nl, name);
  if (!link) throw new Error(`link "${name}" not found`);
  return link;
}

export interface NewLinkOptions {
  mtu?: number;
  mac?: string;
}

function commonAttrs(name: string, o: NewLinkOptions): LinkAttrs {
  const a: LinkAttrs = { ifname: name };
  if (o.mtu) a.mtu = o.mtu;
  if (o.mac) a.address = parseMac(o.mac);
  return a;
}

/** Creates a link of `kind` (fails with EEXIST when the name is taken). */
export function createLink(nl: NetlinkSocket, name: string, kind: string, o: NewLinkOptions & { data?: Buffer; master?: number } = {}): void {
  const attrs = commonAttrs(name, o);
  if (o.master) attrs.master = o.master;
  nl.request(`create ${kind} ${name}`, RTM_NEWLINK, NLM_F.CREATE | NLM_F.EXCL, linkPayload({}, attrs, [linkInfo(kind, o.data)]));
}

export interface VethOptions extends NewLinkOptions {
  peerName: string;
  peerMac?: string;
  /** fd of the netns the peer goes into (the peer is created directly there) */
  peerNetnsFd?: number;
}

/**
 * Creates a veth pair `name` ⇄ `peerName`. The codec has no VETH_INFO_PEER writer, so the
 * peer (an ifinfomsg followed by its own attributes) is encoded here.
 */
export function createVeth(nl: NetlinkSocket, name: string, o: VethOptions): void {
  const peerAttrs: Buffer[] = [attr(IFLA_IFNAME, Buffer.from(`${o.peerName}\0`))];
  if (o.mtu) peerAttrs.push(attr(IFLA_MTU, u32(o.mtu)));
  if (o.peerMac) peerAttrs.push(attr(IFLA_ADDRESS, parseMac(o.peerMac)));
  if (o.peerNetnsFd !== undefined) peerAttrs.push(attr(IFLA_NET_NS_FD, u32(o.peerNetnsFd)));
  const ifinfomsg = Buffer.alloc(16);
  const peer = attr(VETH_INFO_PEER, [ifinfomsg, ...peerAttrs]);
  const info = linkInfo("veth", peer);
  nl.request(
    `create veth ${name}/${o.peerName}`,
    RTM_NEWLINK,
    NLM_F.CREATE | NLM_F.EXCL,
    linkPayload({}, commonAttrs(name, o), [info]),
  );
}

export function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

export function u8(n: number): Buffer {
  return Buffer.from([n]);
}

/** Changes attributes of an existing link (RTM_NEWLINK without CREATE modifies in place). */
export function modifyLink(nl: NetlinkSocket, index: number, attrs: LinkAttrs, flags?: { set: DeviceFlags; change: DeviceFlags }, extra: Buffer[] = []): void {
  const data = flags ? { index, flags: flags.set, change: flags.change } : { index };
  nl.request(`change link #${index}`, RTM_NEWLINK, 0, linkPayload(data, attrs, extra));
}

export function setLinkUp(nl: NetlinkSocket, index: number, up = true): void {
  modifyLink(nl, index, {}, { set: up ? { up: true } : {}, change: { up: true } });
}

export function setPromisc(nl: NetlinkSocket, index: number, on: boolean): void {
  modifyLink(nl, index, {}, { set: on ? { promisc: true } : {}, change: { promisc: true } });
}

export function setMaster(nl: NetlinkSocket, index: number, master: number): void {
  modifyLink(nl, index, { master });
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
  try {
    nl.request(`delete link ${name}`, RTM_DELLINK, 0, linkPayload({}, { ifname: name }));
    return true;
  } catch (e) {
    if (isErrno(e, "ENODEV")) return false;
    throw e;
  }
}
