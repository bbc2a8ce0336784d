// The bpf(2) commands weft uses, each with its union bpf_attr laid out here
// (include/uapi/linux/bpf.h) and sent through the addon's one generic call.
import { native } from "../../native/index";
import { cstr, utf8, strz } from "../netlink/encoding";

const enum Cmd {
  MAP_CREATE = 0,
  MAP_UPDATE_ELEM = 2,
  MAP_DELETE_ELEM = 3,
  PROG_LOAD = 5,
  PROG_ATTACH = 8,
  PROG_DETACH = 9,
  PROG_GET_FD_BY_ID = 13,
  OBJ_GET_INFO_BY_FD = 15,
  PROG_QUERY = 16,
}

export const BPF_MAP_TYPE_HASH = 1;
/** longest-prefix match: keys are { u32 prefix length; the address } */
export const BPF_MAP_TYPE_LPM_TRIE = 11;
/** what an LPM trie must be created with */
export const BPF_F_NO_PREALLOC = 1;
export const BPF_PROG_TYPE_SCHED_CLS = 3;
/** tcx (Linux 6.6): programs on a device's ingress, with no qdisc */
export const BPF_TCX_INGRESS = 46;
const BPF_F_REPLACE = 1 << 2;

function attr(size: number): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(size);
  return { bytes, view: new DataView(bytes.buffer) };
}

/** A NUL-padded name field (map and program names: 15 characters at most). */
function putName(bytes: Uint8Array, offset: number, name: string): void {
  bytes.set(utf8(name.slice(0, 15)), offset);
}

export function mapCreate(type: number, keySize: number, valueSize: number, maxEntries: number, name: string, flags = 0): number {
  const { bytes, view } = attr(48);
  view.setUint32(0, type, true);
  view.setUint32(4, keySize, true);
  view.setUint32(8, valueSize, true);
  view.setUint32(12, maxEntries, true);
  view.setUint32(16, flags, true);
  putName(bytes, 28, name);
  return native.bpf(Cmd.MAP_CREATE, bytes, []);
}

export function mapUpdate(fd: number, key: Uint8Array, value: Uint8Array): void {
  const { bytes, view } = attr(32);
  view.setUint32(0, fd, true);
  native.bpf(Cmd.MAP_UPDATE_ELEM, bytes, [[8, key], [16, value]]);
}

export function mapDelete(fd: number, key: Uint8Array): void {
  const { bytes, view } = attr(16);
  view.setUint32(0, fd, true);
  native.bpf(Cmd.MAP_DELETE_ELEM, bytes, [[8, key]]);
}

export interface ProgLoad {
  type: number;
  /** 8 bytes per instruction */
  insns: Uint8Array;
  license: string;
  name: string;
  expectedAttachType: number;
}

/** Loads a program; a rejection's error carries the verifier's last lines. */
export function progLoad(p: ProgLoad): number {
  const { bytes, view } = attr(128);
  const license = strz(p.license);
  const log = new Uint8Array(64 * 1024);
  view.setUint32(0, p.type, true);
  view.setUint32(4, p.insns.length / 8, true);
  view.setUint32(24, 1, true); // log_level
  view.setUint32(28, log.length, true);
  putName(bytes, 48, p.name);
  view.setUint32(68, p.expectedAttachType, true);
  try {
    return native.bpf(Cmd.PROG_LOAD, bytes, [[8, p.insns], [16, license], [32, log]]);
  } catch (e) {
    const text = cstr(Buffer.from(log.buffer)).trim();
    if (text) (e as Error).message += `: ${text.split("\n").slice(-3).join(" | ")}`;
    throw e;
  }
}

/** Attaches a program to a device's tcx hook, in place of `replaceFd`'s program when given. */
export function tcxAttach(progFd: number, ifindex: number, attachType: number, replaceFd?: number): void {
  const { bytes, view } = attr(32);
  view.setUint32(0, ifindex, true);
  view.setUint32(4, progFd, true);
  view.setUint32(8, attachType, true);
  if (replaceFd !== undefined) {
    view.setUint32(12, BPF_F_REPLACE, true);
    view.setUint32(16, replaceFd, true);
  }
  native.bpf(Cmd.PROG_ATTACH, bytes, []);
}

export function tcxDetach(progFd: number, ifindex: number, attachType: number): void {
  const { bytes, view } = attr(32);
  view.setUint32(0, ifindex, true);
  view.setUint32(4, progFd, true);
  view.setUint32(8, attachType, true);
  native.bpf(Cmd.PROG_DETACH, bytes, []);
}

/** The IDs of the programs on a device's tcx hook, in the order they run. */
export function tcxQuery(ifindex: number, attachType: number): number[] {
  const ids = new Uint32Array(64);
  const { bytes, view } = attr(64);
  view.setUint32(0, ifindex, true);
  view.setUint32(4, attachType, true);
  view.setUint32(24, ids.length, true);
  native.bpf(Cmd.PROG_QUERY, bytes, [[16, new Uint8Array(ids.buffer)]]);
  return [...ids.subarray(0, view.getUint32(24, true))];
}

export function progFdById(id: number): number {
  const { bytes, view } = attr(16);
  view.setUint32(0, id, true);
  return native.bpf(Cmd.PROG_GET_FD_BY_ID, bytes, []);
}

/** A loaded program's ID and name (struct bpf_prog_info). */
export function progInfo(fd: number): { id: number; name: string } {
  const info = new Uint8Array(80);
  const { bytes, view } = attr(16);
  view.setUint32(0, fd, true);
  view.setUint32(4, info.length, true);
  native.bpf(Cmd.OBJ_GET_INFO_BY_FD, bytes, [[8, info]]);
  return { id: new DataView(info.buffer).getUint32(4, true), name: cstr(Buffer.from(info.buffer, 64, 16)) };
}
