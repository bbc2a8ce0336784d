// A synchronous netlink request/response channel over the native transport: frames
// requests, matches replies by sequence number and turns NLMSG_ERROR into errors.
// Payloads are encoded by the callers, with ./encoding.
import { align4, cstr, findAttr, nlmsghdr } from "./encoding";
import { native } from "../../native/index";
import { isErrno } from "../errno";

export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  DUMP: 0x300,
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
} as const;

export const NETLINK_ROUTE = 0;
export const NETLINK_NETFILTER = 12;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_DUMP_INTR = 0x10;
const NLM_F_CAPPED = 0x100;
const NLM_F_ACK_TLVS = 0x200;
/** How often a dump is asked for while concurrent changes interrupt it, before giving up. */
const DUMP_TRIES = 4;
const EINTR = 4;
const NLMSGERR_ATTR_MSG = 1;
const RECV_TIMEOUT_MS = 5000;

/** A kernel refusal: errno name/number plus the kernel's extended-ack text when given. */
export class NetlinkError extends Error {
  readonly code: string;
  constructor(
    readonly op: string,
    readonly errno: number,
    readonly kernelMessage: string,
  ) {
    const code = native.errnoName(errno);
    super(`${op}: ${code || `errno ${errno}`}${kernelMessage ? ` (${kernelMessage})` : ""}`);
    this.code = code;
  }
}

export interface NetlinkMessage {
  type: number;
  flags: number;
  seq: number;
  /** the payload, past the nlmsghdr */
  data: Buffer;
}

/** The messages of one received datagram (a list, not a generator: see ./encoding). */
function messages(buf: Buffer): NetlinkMessage[] {
  const out: NetlinkMessage[] = [];
  for (let off = 0; off + nlmsghdr.size <= buf.length; ) {
    const { len, type, flags, seq } = nlmsghdr.parse(buf.subarray(off));
    if (len < nlmsghdr.size || off + len > buf.length) throw new Error(`malformed netlink message (length ${len} at ${off})`);
    out.push({ type, flags, seq, data: buf.subarray(off + nlmsghdr.size, off + len) });
    off += align4(len);
  }
  return out;
}

/**
 * The extended-ack text. An NLMSG_ERROR is errno, the request's header (and payload unless
 * capped), then TLVs; an NLMSG_DONE ending a failed dump, errno then TLVs.
 */
function errorText(msg: NetlinkMessage): string {
  if (!(msg.flags & NLM_F_ACK_TLVS)) return "";
  const tlvOffset = msg.type === NLMSG_DONE ? 4 : 4 + (msg.flags & NLM_F_CAPPED ? nlmsghdr.size : msg.data.readUInt32LE(4));
  // The errno is the answer; malformed TLVs around the text must not replace it.
  try {
    const text = findAttr(msg.data.subarray(tlvOffset), NLMSGERR_ATTR_MSG);
    return text ? cstr(text) : "";
  } catch {
    return "";
  }
}

/** An NLMSG_ERROR answering a request: an ACK, or the kernel's refusal, thrown. */
function acked(op: string, msg: NetlinkMessage): void {
  const errno = -msg.data.readInt32LE(0);
  if (errno !== 0) throw new NetlinkError(op, errno, errorText(msg));
}

export class NetlinkSocket {
  private seq = Math.floor(Math.random() * 0x7fffffff);

  private constructor(private readonly fd: number) {}

  /** Opens a socket in the netns at `netnsPath`, or in the caller's own when omitted. */
  static open(netnsPath?: string, protocol = NETLINK_ROUTE): NetlinkSocket {
    return new NetlinkSocket(native.nlOpen(netnsPath ?? null, protocol));
  }

  close(): void {
    native.close(this.fd);
  }

  /** Joins multicast group `group` (RTNLGRP_*): the kernel then sends us its notifications. */
  join(group: number): void {
    native.nlJoin(this.fd, group);
  }

  /**
   * The notifications received so far, without waiting, from at most `maxReads` datagrams
   * (so a storm of them cannot hold the caller forever). `overrun`: the kernel dropped some
   * because we read too late; `more`: reading stopped at the cap. Either way the caller
   * knows only that something changed.
   */
  pending(maxReads = 1024): { received: NetlinkMessage[]; overrun: boolean; more: boolean } {
    const received: NetlinkMessage[] = [];
    let overrun = false;
    for (let reads = 0; reads < maxReads; reads++) {
      let buf: Buffer | null;
      try {
        buf = native.nlRecv(this.fd, 0);
      } catch (e) {
        // Reported once, before what is still queued: read on past it.
        if (!isErrno(e, "ENOBUFS")) throw e;
        overrun = true;
        continue;
      }
      if (buf === null) return { received, overrun, more: false };
      received.push(...messages(buf));
    }
    return { received, overrun, more: true };
  }

  /** Waits up to `timeoutMs` for a notification and consumes it; whether one came. */
  awaitNotification(timeoutMs: number): boolean {
    try {
      return native.nlRecv(this.fd, timeoutMs) !== null;
    } catch (e) {
      // Notifications were dropped: something changed all the same.
      if (isErrno(e, "ENOBUFS")) return true;
      throw e;
    }
  }

  /**
   * Sends one request and returns the payloads of its replies. Every request asks for
   * an ACK so failures surface here, synchronously, with the kernel's reason. A dump that
   * failed part-way (its NLMSG_DONE carries an errno) throws; one a concurrent change
   * interrupted (NLM_F_DUMP_INTR: entries may be missing or repeated) is asked for again.
   */
  request(op: string, type: number, flags: number, payload: Uint8Array[]): NetlinkMessage[] {
    for (let tries = 1; ; tries++) {
      const replies = this.exchange(op, type, flags, payload);
      if (replies) return replies;
      if (tries === DUMP_TRIES) throw new NetlinkError(op, EINTR, `dump interrupted by concurrent changes ${DUMP_TRIES} times in a row`);
    }
  }

  /**
   * Sends one request from a child process and returns once `done` accepts a message
   * (a notification of a group this socket joined) or the request's ACK arrives, whichever
   * comes first; a refusal throws, as in request(). For a request whose effect the kernel
   * announces before it has finished its work: the child waits that out (native
   * nlSendDetached), not the caller.
   */
  requestUntil(op: string, type: number, flags: number, payload: Uint8Array[], done: (msg: NetlinkMessage) => boolean): void {
    const { seq, data } = this.frame(type, flags, payload);
    const sendStatus = native.nlSendDetached(this.fd, data);
    try {
      for (;;) {
        let buf: Buffer;
        try {
          buf = this.receive(op, sendStatus);
        } catch (e) {
          // Notifications were dropped, perhaps the awaited one: the ACK still comes.
          if (isErrno(e, "ENOBUFS") && !(e instanceof NetlinkError)) continue;
          throw e;
        }
        for (const msg of messages(buf)) {
          if (msg.type === NLMSG_ERROR && msg.seq === seq) return acked(op, msg);
          if (done(msg)) return;
        }
      }
    } finally {
      if (sendStatus >= 0) native.close(sendStatus);
    }
  }

  /** One request, framed: a fresh sequence number, and REQUEST and ACK set. */
  private frame(type: number, flags: number, payload: Uint8Array[]): { seq: number; data: Buffer } {
    const seq = (this.seq = (this.seq + 1) & 0x7fffffff);
    // Headers are multiples of 4 bytes and attr() pads, so the payload is aligned.
    let len = nlmsghdr.size;
    for (const p of payload) len += p.length;
    const header = nlmsghdr.format({ len, type, flags: NLM_F.REQUEST | NLM_F.ACK | flags, seq });
    return { seq, data: Buffer.concat([header, ...payload], len) };
  }

  /** The next datagram; with nlSendDetached's status fd, a send its child could not make throws. */
  private receive(op: string, sendStatus = -1): Buffer {
    const got = native.nlRecv(this.fd, RECV_TIMEOUT_MS, sendStatus);
    if (typeof got === "number") throw new NetlinkError(op, got, "");
    if (got === null) throw new Error(`${op}: no reply from the kernel within ${RECV_TIMEOUT_MS} ms`);
    return got;
  }

  /** One request and its replies; null for a dump a concurrent change interrupted. */
  private exchange(op: string, type: number, flags: number, payload: Uint8Array[]): NetlinkMessage[] | null {
    const { seq, data } = this.frame(type, flags, payload);
    native.nlSend(this.fd, data);
    const replies: NetlinkMessage[] = [];
    let interrupted = false;
    for (;;) {
      for (const msg of messages(this.receive(op))) {
        if (msg.seq !== seq) continue; // a stale reply to an earlier, timed-out request
        if (msg.flags & NLM_F_DUMP_INTR) interrupted = true;
        if (msg.type === NLMSG_DONE) {
          const errno = msg.data.length >= 4 ? -msg.data.readInt32LE(0) : 0;
          if (errno !== 0) throw new NetlinkError(op, errno, errorText(msg));
          return interrupted ? null : replies;
        }
        if (msg.type === NLMSG_ERROR) {
          acked(op, msg);
          return replies;
        }
        replies.push(msg);
      }
    }
  }
}

/**
 * Runs `fn` with a socket in `netnsPath` (or the current netns), closing it afterwards;
 * rtnetlink unless `protocol` says otherwise.
 */
export function withSocket<T>(netnsPath: string | undefined, fn: (nl: NetlinkSocket) => T, protocol?: number): T {
  const nl = NetlinkSocket.open(netnsPath, protocol);
  try {
    return fn(nl);
  } finally {
    nl.close();
  }
}
