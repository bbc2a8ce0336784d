// Read-only nf_tables access over NETLINK_NETFILTER: GET queries, and the decoding of the
// change notifications the agent's kernel watch receives (nftChangeOf). The firewall
// writes with `nft -f -` (one atomic batch, nft's own parser and checks), but each spawned
// `nft` or `iptables` costs ~4 ms and a batch that deletes anything ~20 ms, so it first
// asks the kernel directly, in microseconds, whether there is anything to do: does a chain
// drop by policy, does an element exist, is a rule there. Only GET requests: no batch
// framing (NFNL_MSG_BATCH_BEGIN/END) needed.
// (Closing this socket, like any netfilter netlink socket, waits for the grace period of a
// deletion committed just before by anyone in the netns; see shared/firewall/nft.ts.)
import { isErrno } from "../errno";
import { attr, attrList, attrMap, cstr, nfgenmsg, strz, utf8 } from "./encoding";
import { NETLINK_NETFILTER, NLM_F, NetlinkSocket, withSocket, type NetlinkMessage } from "./socket";

/** nfgenmsg.nfgen_family values. */
export const NFPROTO = { INET: 1, IPV4: 2, BRIDGE: 7, IPV6: 10 } as const;
export type NfFamily = (typeof NFPROTO)[keyof typeof NFPROTO];

const NFNL_SUBSYS_NFTABLES = 10;
/** The multicast group of nf_tables change notifications (tables, chains, rules, sets). */
export const NFNLGRP_NFTABLES = 7;
const NFT_MSG_NEWTABLE = 0;
const NFT_MSG_GETTABLE = 1;
const NFT_MSG_DELTABLE = 2;
const NFT_MSG_NEWCHAIN = 3;
const NFT_MSG_GETCHAIN = 4;
const NFT_MSG_DELCHAIN = 5;
const NFT_MSG_NEWRULE = 6;
const NFT_MSG_GETRULE = 7;
const NFT_MSG_DELRULE = 8;
const NFT_MSG_GETSETELEM = 13;
const msgType = (op: number): number => (NFNL_SUBSYS_NFTABLES << 8) | op;

const NFTA_TABLE_NAME = 1;
const NFTA_TABLE_FLAGS = 2;
const NFTA_CHAIN_TABLE = 1;
const NFTA_CHAIN_NAME = 3;
const NFTA_CHAIN_POLICY = 5;
const NFTA_RULE_TABLE = 1;
const NFTA_RULE_CHAIN = 2;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_USERDATA = 6;
const NFTA_DATA_VALUE = 1;
/** Inside NFTA_SET_ELEM_USERDATA (libnftnl TLVs: u8 type, u8 length): the element's comment. */
const NFTNL_UDATA_SET_ELEM_COMMENT = 0;
const NF_DROP = 0;

/** Opens a netfilter netlink socket in the caller's netns. */
export function openNetfilter(): NetlinkSocket {
  return NetlinkSocket.open(undefined, NETLINK_NETFILTER);
}

/** Runs `fn` with a netfilter socket in the caller's netns, closing it afterwards. */
export function withNetfilter<T>(fn: (nl: NetlinkSocket) => T): T {
  return withSocket(undefined, fn, NETLINK_NETFILTER);
}

const str = (type: number, s: string): Buffer => attr(type, strz(s));

/** What an nf_tables change notification is about; null for sets, elements and generations. */
export interface NftChange {
  family: number;
  table: string;
  /** the chain, for a chain or a rule */
  chain?: string;
}

/** Per table, chain and rule message: the attributes naming its table and chain. */
const NAMED_BY: Record<number, [table: number, chain?: number]> = {
  [NFT_MSG_NEWTABLE]: [NFTA_TABLE_NAME],
  [NFT_MSG_DELTABLE]: [NFTA_TABLE_NAME],
  [NFT_MSG_NEWCHAIN]: [NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME],
  [NFT_MSG_DELCHAIN]: [NFTA_CHAIN_TABLE, NFTA_CHAIN_NAME],
  [NFT_MSG_NEWRULE]: [NFTA_RULE_TABLE, NFTA_RULE_CHAIN],
  [NFT_MSG_DELRULE]: [NFTA_RULE_TABLE, NFTA_RULE_CHAIN],
};

export function nftChangeOf(m: NetlinkMessage): NftChange | null {
  if (m.type >> 8 !== NFNL_SUBSYS_NFTABLES || m.data.length < nfgenmsg.size) return null;
  // Set elements and generations, most of what a pod's ADD or DEL sends, are skipped
  // before anything is decoded.
  const names = NAMED_BY[m.type & 0xff];
  if (!names) return null;
  const [tableAttr, chainAttr] = names;
  const a = nfgenmsg.attrs(m.data);
  const table = a.get(tableAttr);
  if (!table) return null;
  const chain = chainAttr === undefined ? undefined : a.get(chainAttr);
  return { family: nfgenmsg.parse(m.data).family, table: cstr(table), ...(chain ? { chain: cstr(chain) } : {}) };
}

/** Runs a single-object GET; null when the kernel says ENOENT (no such table, chain, set or element). */
function getOne(nl: NetlinkSocket, what: string, op: number, payload: Buffer[]): Buffer | null {
  try {
    const [reply] = nl.request(what, msgType(op), 0, payload);
    return reply ? reply.data : null;
  } catch (e) {
    if (isErrno(e, "ENOENT")) return null;
    throw e;
  }
}

function getTable(nl: NetlinkSocket, family: NfFamily, table: string): Buffer | null {
  return getOne(nl, `nft get table ${table}`, NFT_MSG_GETTABLE, [nfgenmsg.format({ family }), str(NFTA_TABLE_NAME, table)]);
}

export function tableExists(nl: NetlinkSocket, family: NfFamily, table: string): boolean {
  return getTable(nl, family, table) !== null;
}

/** A chain's policy, from its attributes: "drop" or "accept" for a base chain, null for a regular one. */
function policyOf(chain: Map<number, Buffer>): "drop" | "accept" | null {
  const policy = chain.get(NFTA_CHAIN_POLICY);
  if (!policy) return null;
  return policy.readUInt32BE(0) === NF_DROP ? "drop" : "accept";
}

/**
 * The policy of a base chain: "drop" or "accept"; null when the chain (or its table) does
 * not exist, or it is a regular chain, which has no policy.
 */
export function chainPolicy(nl: NetlinkSocket, family: NfFamily, table: string, chain: string): "drop" | "accept" | null {
  const reply = getOne(nl, `nft get chain ${table} ${chain}`, NFT_MSG_GETCHAIN, [
    nfgenmsg.format({ family }),
    str(NFTA_CHAIN_TABLE, table),
    str(NFTA_CHAIN_NAME, chain),
  ]);
  return reply && policyOf(nfgenmsg.attrs(reply));
}

/** A table's flags (NFT_TABLE_F_*: 1 is dormant) and its chains with their policies. */
export interface TableLayout {
  flags: number;
  chains: Array<{ name: string; policy: "drop" | "accept" | null }>;
}

/** The layout of a table; null when it does not exist. */
export function tableLayout(nl: NetlinkSocket, family: NfFamily, table: string): TableLayout | null {
  const t = getTable(nl, family, table);
  if (!t) return null;
  const flags = nfgenmsg.attrs(t).get(NFTA_TABLE_FLAGS)?.readUInt32BE(0) ?? 0;
  // The kernel dumps the chains of every table of the family: ours are picked here.
  const chains: TableLayout["chains"] = [];
  for (const reply of nl.request(`nft list chains ${table}`, msgType(NFT_MSG_GETCHAIN), NLM_F.DUMP, [nfgenmsg.format({ family })])) {
    const a = nfgenmsg.attrs(reply.data);
    const of = a.get(NFTA_CHAIN_TABLE);
    const name = a.get(NFTA_CHAIN_NAME);
    if (of && name && cstr(of) === table) chains.push({ name: cstr(name), policy: policyOf(a) });
  }
  return { flags, chains };
}

export interface SetElement {
  key: Buffer;
  comment?: string;
}

/**
 * The set's or map's element with this key (raw bytes, e.g. an address in network order),
 * with its comment; null when there is none, or no such set or table. A single-element GET,
 * answered by kernels since 5.x.
 */
export function getElement(nl: NetlinkSocket, family: NfFamily, table: string, set: string, key: Uint8Array): SetElement | null {
  const elem = attr(NFTA_LIST_ELEM, [attr(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, key)], true)], true);
  const reply = getOne(nl, `nft get element ${table} ${set}`, NFT_MSG_GETSETELEM, [
    nfgenmsg.format({ family }),
    str(NFTA_SET_ELEM_LIST_TABLE, table),
    str(NFTA_SET_ELEM_LIST_SET, set),
    attr(NFTA_SET_ELEM_LIST_ELEMENTS, [elem], true),
  ]);
  return reply ? (elementsOf(reply)[0] ?? null) : null;
}

/** All elements of a set or map with their comments; [] when the table or set does not exist. */
export function listElements(nl: NetlinkSocket, family: NfFamily, table: string, set: string): SetElement[] {
  let replies;
  try {
    replies = nl.request(`nft list set ${table} ${set}`, msgType(NFT_MSG_GETSETELEM), NLM_F.DUMP, [
      nfgenmsg.format({ family }),
      str(NFTA_SET_ELEM_LIST_TABLE, table),
      str(NFTA_SET_ELEM_LIST_SET, set),
    ]);
  } catch (e) {
    if (isErrno(e, "ENOENT")) return [];
    throw e;
  }
  const found: SetElement[] = [];
  for (const reply of replies) found.push(...elementsOf(reply.data));
  return found;
}

/** The elements an NFT_MSG_NEWSETELEM message (a GET's or a dump's reply) lists. */
function elementsOf(msg: Buffer): SetElement[] {
  const found: SetElement[] = [];
  const list = nfgenmsg.attrs(msg).get(NFTA_SET_ELEM_LIST_ELEMENTS);
  if (!list) return found;
  for (const [type, item] of attrList(list)) {
    if (type !== NFTA_LIST_ELEM) continue;
    const elem = attrMap(item);
    const key = elem.get(NFTA_SET_ELEM_KEY);
    const value = key && attrMap(key).get(NFTA_DATA_VALUE);
    if (!value) continue;
    const udata = elem.get(NFTA_SET_ELEM_USERDATA);
    const comment = udata && udataString(udata, NFTNL_UDATA_SET_ELEM_COMMENT);
    found.push(comment !== undefined ? { key: value, comment } : { key: value });
  }
  return found;
}

/** A string entry of libnftnl's user data TLVs (u8 type, u8 length, value ending in NUL). */
function udataString(data: Buffer, wanted: number): string | undefined {
  for (let i = 0; i + 2 <= data.length; i += 2 + data[i + 1]!) {
    if (data[i] === wanted) return cstr(data.subarray(i + 2, i + 2 + data[i + 1]!));
  }
  return undefined;
}

/** The chain's rules, as netlink messages; none when the chain does not exist. */
export function dumpRules(nl: NetlinkSocket, family: NfFamily, table: string, chain: string): NetlinkMessage[] {
  try {
    return nl.request(`nft list chain ${table} ${chain}`, msgType(NFT_MSG_GETRULE), NLM_F.DUMP, [
      nfgenmsg.format({ family }),
      str(NFTA_RULE_TABLE, table),
      str(NFTA_RULE_CHAIN, chain),
    ]);
  } catch (e) {
    if (isErrno(e, "ENOENT")) return [];
    throw e;
  }
}

/**
 * How many of `rules` contain `needle` anywhere in their netlink encoding. Finds a rule by
 * its comment without decoding expressions:
 * iptables-nft keeps `-m comment` either as an xt `comment` match (its info holds the text,
 * iptables 1.8.9) or as rule user data (newer releases); either way the bytes are there.
 */
export function countMatching(rules: NetlinkMessage[], needle: string): number {
  const bytes = utf8(needle);
  let matching = 0;
  for (const r of rules) if (r.data.includes(bytes)) matching++;
  return matching;
}

/** How many rules the chain holds, and how many of them contain `needle` (countMatching). */
export function countRules(nl: NetlinkSocket, family: NfFamily, table: string, chain: string, needle: string): { total: number; matching: number } {
  const rules = dumpRules(nl, family, table, chain);
  return { total: rules.length, matching: countMatching(rules, needle) };
}
