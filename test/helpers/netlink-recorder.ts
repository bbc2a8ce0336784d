// A NetlinkSocket stand-in for unit tests of request encoding: it records each request's
// type, flags and payload instead of sending it, and answers with no messages.
import type { NetlinkSocket } from "../../shared/netlink/socket";

export interface Sent {
  type: number;
  flags: number;
  payload: Buffer;
}

export function recorder(): { nl: NetlinkSocket; sent: Sent[] } {
  const sent: Sent[] = [];
  const nl = {
    request(_op: string, type: number, flags: number, payload: Uint8Array[]) {
      sent.push({ type, flags, payload: Buffer.concat(payload) });
      return [];
    },
  } as unknown as NetlinkSocket;
  return { nl, sent };
}
