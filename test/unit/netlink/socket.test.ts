// How a request reads a dump's replies, against a scripted kernel (an interrupted dump is a
// race a test cannot count on): one a concurrent change interrupted (NLM_F_DUMP_INTR) is
// asked for again. A dump that failed part-way: test/integration/netlink-errors.test.ts.
import { beforeEach, describe, expect, it, vi } from "vitest";
import { nlmsghdr } from "../../../shared/netlink/encoding";

const kernel = vi.hoisted(() => ({ sent: [] as Buffer[], answers: [] as Array<(seq: number) => Buffer> }));

vi.mock("../../../native/index", () => ({
  native: {
    nlOpen: () => 3,
    close: () => {},
    errnoName: (errno: number) => ({ 4: "EINTR" })[errno] ?? "",
    nlSend: (_fd: number, data: Uint8Array) => kernel.sent.push(Buffer.from(data)),
    nlRecv: () => {
      const seq = kernel.sent.at(-1)!.readUInt32LE(8);
      return kernel.answers.shift()!(seq);
    },
  },
}));

const { NetlinkSocket, NLM_F } = await import("../../../shared/netlink/socket");

const [NLMSG_DONE, RTM_NEWLINK, MULTI, DUMP_INTR] = [3, 16, 0x2, 0x10];

/** One datagram of messages of `seq`, each a type, its flags and a 4-byte payload. */
function datagram(seq: number, ...msgs: Array<[type: number, flags: number, value: number]>): Buffer {
  return Buffer.concat(
    msgs.map(([type, flags, value]) => {
      const body = Buffer.alloc(4);
      body.writeInt32LE(value);
      return Buffer.concat([nlmsghdr.format({ len: 20, type, flags, seq }), body]);
    }),
  );
}

beforeEach(() => {
  kernel.sent.length = 0;
  kernel.answers.length = 0;
});

describe("a dump's replies", () => {
  it("are read up to NLMSG_DONE", () => {
    kernel.answers.push((seq) => datagram(seq, [RTM_NEWLINK, MULTI, 1], [RTM_NEWLINK, MULTI, 2], [NLMSG_DONE, MULTI, 0]));
    const replies = NetlinkSocket.open().request("list", 18, NLM_F.DUMP, []);
    expect(replies.map((m) => m.data.readInt32LE(0))).toEqual([1, 2]);
    expect(kernel.sent).toHaveLength(1);
  });

  it("are asked for again when a concurrent change interrupted the dump", () => {
    kernel.answers.push((seq) => datagram(seq, [RTM_NEWLINK, MULTI | DUMP_INTR, 1], [NLMSG_DONE, MULTI | DUMP_INTR, 0]));
    kernel.answers.push((seq) => datagram(seq, [RTM_NEWLINK, MULTI, 7], [NLMSG_DONE, MULTI, 0]));
    const replies = NetlinkSocket.open().request("list", 18, NLM_F.DUMP, []);
    expect(replies.map((m) => m.data.readInt32LE(0))).toEqual([7]);
    expect(kernel.sent).toHaveLength(2);
  });

  it("throw when every try was interrupted", () => {
    for (let i = 0; i < 4; i++) kernel.answers.push((seq) => datagram(seq, [NLMSG_DONE, MULTI | DUMP_INTR, 0]));
    expect(() => NetlinkSocket.open().request("list links", 18, NLM_F.DUMP, [])).toThrow("list links: EINTR (dump interrupted by concurrent changes 4 times in a row)");
  });
});
