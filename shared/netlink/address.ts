// Interface addresses (RTM_*ADDR).
import { deleted } from "../errno";
import { formatIP, ipFromBytes, ipToBytes, lastOf, parseCIDR, type IPNet } from "../ip";
import { afOf, attr, ifaddrmsg, u32 } from "./encoding";
import { NLM_F, NetlinkSocket, type NetlinkMessage } from "./socket";

const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_GETADDR = 22;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_BROADCAST = 4;
const IFA_FLAGS = 8;
const IFA_F_NODAD = 0x02;
const IFA_F_DADFAILED = 0x08;
const IFA_F_TENTATIVE = 0x40;
const RTNLGRP_IPV6_IFADDR = 9;

export interface Address {
  index: number;
  /** "10.1.0.5/24" */
  cidr: string;
  family: 4 | 6;
  scope: number;
  /** IPv6 duplicate address detection still running: the address cannot be used yet. */
  tentative: boolean;
  /** IPv6 duplicate address detection found the address in use elsewhere on the link. */
  dadFailed: boolean;
}

function payload(index: number, net: IPNet, flags = 0): Buffer[] {
  const bytes = ipToBytes(net.ip);
  const v4 = net.ip.family === 4;
  const hdr = ifaddrmsg.format({ family: afOf(net.ip.family), prefixlen: net.prefix, index, flags });
  // IPv4 needs IFA_LOCAL (the address) as well as IFA_ADDRESS (the peer/prefix address).
  return v4
    ? [hdr, attr(IFA_LOCAL, bytes), attr(IFA_ADDRESS, bytes)]
    : [hdr, attr(IFA_ADDRESS, bytes), attr(IFA_FLAGS, u32(flags))];
}

/** The subnet's broadcast address, as `ip addr add … brd +` and the reference plugins set it (IPv4 below /31). */
function broadcast(net: IPNet): Buffer[] {
  return net.ip.family === 4 && net.prefix < 31 ? [attr(IFA_BROADCAST, ipToBytes(lastOf(net)))] : [];
}

function cidrOf(s: string): IPNet {
  const net = parseCIDR(s);
  if (!net) throw new Error(`invalid address "${s}"`);
  return net;
}

/** Adds `cidr` to the link; `noDad` skips IPv6 duplicate address detection. */
export function addAddress(nl: NetlinkSocket, index: number, cidr: string, o: { noDad?: boolean } = {}): void {
  const net = cidrOf(cidr);
  nl.request(
    `add address ${cidr}`,
    RTM_NEWADDR,
    NLM_F.CREATE | NLM_F.EXCL,
    [...payload(index, net, o.noDad ? IFA_F_NODAD : 0), ...broadcast(net)],
  );
}

export function deleteAddress(nl: NetlinkSocket, index: number, cidr: string): boolean {
  return deleted(["EADDRNOTAVAIL"], () => nl.request(`delete address ${cidr}`, RTM_DELADDR, 0, payload(index, cidrOf(cidr))));
}

/** Addresses of one link (or of all links when `index` is 0). */
export function listAddresses(nl: NetlinkSocket, index = 0, family?: 4 | 6): Address[] {
  const fam = family ? afOf(family) : 0;
  const out: Address[] = [];
  for (const m of nl.request("list addresses", RTM_GETADDR, NLM_F.DUMP, [ifaddrmsg.format({ family: fam, index })])) {
    const h = ifaddrmsg.parse(m.data);
    // A kernel without IPv6 answers an AF_INET6 dump with every family's addresses.
    if ((index && h.index !== index) || (fam && h.family !== fam)) continue;
    const a = ifaddrmsg.attrs(m.data);
    const raw = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
    if (!raw) continue;
    const ip = ipFromBytes(raw);
    // IFA_FLAGS holds all of them; the header's byte only the low eight.
    const flags = a.get(IFA_FLAGS)?.readUInt32LE(0) ?? h.flags;
    const dadFailed = (flags & IFA_F_DADFAILED) !== 0;
    const tentative = (flags & IFA_F_TENTATIVE) !== 0 && !dadFailed;
    out.push({ index: h.index, cidr: `${formatIP(ip)}/${h.prefixlen}`, family: ip.family, scope: h.scope, tentative, dadFailed });
  }
  return out;
}

/**
 * Waits, at most `timeoutMs`, until no IPv6 address of the link in the netns at `netnsPath`
 * is tentative any more, as the reference's SettleAddresses does; throws when duplicate
 * address detection failed for one, or the time ran out. Both sockets are opened in that
 * netns, so the caller's thread never waits inside it.
 */
export function settleAddresses(netnsPath: string, index: number, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  const nl = NetlinkSocket.open(netnsPath);
  let events: NetlinkSocket | undefined;
  try {
    events = NetlinkSocket.open(netnsPath);
    // Joined before the first look, so no change between the two goes unseen.
    events.join(RTNLGRP_IPV6_IFADDR);
    for (;;) {
      const v6 = listAddresses(nl, index, 6);
      const failed = v6.find((a) => a.dadFailed);
      if (failed) throw new Error(`address ${failed.cidr} failed duplicate address detection: another host on the link has it`);
      if (!v6.some((a) => a.tentative)) return;
      const left = deadline - Date.now();
      if (left <= 0 || !events.awaitNotification(left)) throw new Error(`addresses still tentative after ${timeoutMs / 1000} s`);
    }
  } finally {
    events?.close();
    nl.close();
  }
}

/** For an RTM_NEWADDR/RTM_DELADDR notification, its link's index; else null. */
export function addressNotificationIndex(m: NetlinkMessage): number | null {
  return m.type === RTM_NEWADDR || m.type === RTM_DELADDR ? ifaddrmsg.parse(m.data).index : null;
}
