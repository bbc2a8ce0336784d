// Interface addresses (RTM_*ADDR).
import { formatAddressMessage, parseAddressMessage } from "netlink/dist/rt/structs.js";
import { AttrStream } from "netlink/dist/structs.js";
import { formatIP, ipFromBytes, ipToBytes, parseCIDR, type IPNet } from "../ip";
import { isErrno, NLM_F, NetlinkSocket } from "./socket";

const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_GETADDR = 22;
const AF_INET = 2;
const AF_INET6 = 10;

export interface Address {
  index: number;
  /** "10.1.0.5/24" */
  cidr: string;
  family: 4 | 6;
  scope: number;
}

function payload(index: number, net: IPNet, flags: { nodad?: true } = {}): Buffer[] {
  const s = new AttrStream();
  const bytes = ipToBytes(net.ip);
  const v4 = net.ip.family === 4;
  formatAddressMessage(
    {
      kind: "address",
      data: { family: v4 ? AF_INET : AF_INET6, prefixlen: net.prefix, index, flags },
      // IPv4 needs IFA_LOCAL (the address) as well as IFA_ADDRESS (the peer/prefix address).
      attrs: v4 ? { local: bytes, address: bytes } : { address: bytes, flags },
    },
    s,
  );
  return s.bufs as Buffer[];
}

function cidrOf(s: string): IPNet {
  const net = parseCIDR(s);
  if (!net) throw new Error(`invalid address "${s}"`);
  return net;
}

/** Adds `cidr` to the link; `noDad` skips IPv6 duplicate address detection. */
export function addAddress(nl: NetlinkSocket, index: number, cidr: string, o: { noDad?: boolean } = {}): void {
  nl.request(
    `add address ${cidr}`,
    RTM_NEWADDR,
    NLM_F.CREATE | NLM_F.EXCL,
    payload(index, cidrOf(cidr), o.noDad ? { nodad: true } : {}),
  );
}

export function deleteAddress(nl: NetlinkSocket, index: number, cidr: string): boolean {
  try {
    nl.request(`delete address ${cidr}`, RTM_DELADDR, 0, payload(index, cidrOf(cidr)));
    return true;
  } catch (e) {
    if (isErrno(e, "EADDRNOTAVAIL")) return false;
    throw e;
  }
}

/** Addresses of one link (or of all links when `index` is 0). */
export function listAddresses(nl: NetlinkSocket, index = 0, family?: 4 | 6): Address[] {
  const s = new AttrStream();
  const fam = family === 4 ? AF_INET : family === 6 ? AF_INET6 : 0;
  formatAddressMessage({ kind: "address", data: { family: fam, index }, attrs: {} }, s);
  const out: Address[] = [];
  for (const m of nl.request("list addresses", RTM_GETADDR, NLM_F.DUMP, s.bufs)) {
    const a = parseAddressMessage(m.data);
    if (index && a.data.index !== index) continue;
    const raw = a.attrs.local ?? a.attrs.address;
    if (!raw) continue;
    const ip = ipFromBytes(raw);
    out.push({
      index: a.data.index ?? 0,
      cidr: `${formatIP(ip)}/${a.data.prefixlen ?? 0}`,
      family: ip.family,
      scope: a.data.scope ?? 0,
    });
  }
  return out;
}
