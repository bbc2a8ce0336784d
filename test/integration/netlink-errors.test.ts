// What a failed netlink request tells the caller: the errno by name and the kernel's own
// reason (its extended ACK), in one message; and what the transport does when nothing
// answers: a receive that times out instead of blocking.
import { expect, it } from "vitest";
import { native } from "../../native/index";
import { ifinfomsg, nlmsghdr } from "../../shared/netlink/encoding";
import { createLink, getLinkByName, requireLink, setLinkUp, setMtu } from "../../shared/netlink/link";
import { listAddresses } from "../../shared/netlink/address";
import { addRoute } from "../../shared/netlink/route";
import { netnsPath } from "../helpers/netns";
import { netlinkErrorOf, useNetnsSocket } from "../helpers/netlink-socket";

const [RTM_NEWLINK, RTM_GETLINK, NLM_F_REQUEST] = [16, 18, 1];

const { ns, nl } = useNetnsSocket("nle");

it("carries the errno and the kernel's reason", () => {
  const e = netlinkErrorOf(() => createLink(nl(), "wnle-x", "no-such-kind"));
  expect(e.code).toBe("EOPNOTSUPP");
  expect(e.errno).toBe(95);
  expect(e.kernelMessage).toBe("Unknown device type");
  expect(e.message).toMatch(/: EOPNOTSUPP \(Unknown device type\)$/);
  expect(getLinkByName(nl(), "wnle-x")).toBeNull();

  createLink(nl(), "wnle-b", "bridge");
  const br = requireLink(nl(), "wnle-b");
  const mtu = netlinkErrorOf(() => setMtu(nl(), br.index, 10));
  expect(mtu.code).toBe("EINVAL");
  expect(mtu.kernelMessage).toMatch(/mtu/i);
  expect(requireLink(nl(), "wnle-b").mtu).toBe(br.mtu);
});

it("names the errno alone when the kernel gives no reason", () => {
  createLink(nl(), "wnle-d", "bridge");
  const e = netlinkErrorOf(() => createLink(nl(), "wnle-d", "bridge"));
  expect(e.code).toBe("EEXIST");
  expect(e.kernelMessage).toBe("");
  expect(e.message).toMatch(/: EEXIST$/);
});

it("reports a dump that failed part-way (its errno in NLMSG_DONE) instead of an empty list", () => {
  const e = netlinkErrorOf(() => listAddresses(nl(), 999999));
  expect(e.code).toBe("ENODEV");
});

it("reports a route through a gateway no interface reaches", () => {
  createLink(nl(), "wnle-r", "bridge");
  const { index } = requireLink(nl(), "wnle-r");
  setLinkUp(nl(), index);
  const e = netlinkErrorOf(() => addRoute(nl(), { dst: "10.9.0.0/24", gw: "192.0.2.1", index }));
  expect(e.code).toBe("ENETUNREACH");
  expect(e.kernelMessage).toBe("Nexthop has invalid gateway");
});

it("times a receive out when nothing arrives, and leaves the socket usable", () => {
  const fd = native.nlOpen(netnsPath(ns()), 0 /* NETLINK_ROUTE */);
  try {
    const t = process.hrtime.bigint();
    expect(native.nlRecv(fd, 150)).toBeNull();
    const waited = Number(process.hrtime.bigint() - t) / 1e6;
    expect(waited).toBeGreaterThanOrEqual(140);
    expect(native.nlRecv(fd, 0)).toBeNull();
    // The same socket still gets answers: RTM_GETLINK for index 1 (lo).
    native.nlSend(fd, Buffer.concat([nlmsghdr.format({ len: 32, type: RTM_GETLINK, flags: NLM_F_REQUEST, seq: 1 }), ifinfomsg.format({ index: 1 })]));
    const reply = native.nlRecv(fd, 1000);
    expect(reply).not.toBeNull();
    expect(nlmsghdr.parse(reply!).type).toBe(RTM_NEWLINK); // lo described
  } finally {
    native.close(fd);
  }
});
