// Route requests, checked against the bytes `ip route add` sends.
import { describe, expect, it } from "vitest";
import { attrMap } from "../../../shared/netlink/encoding";
import { addRoute } from "../../../shared/netlink/route";
import { recorder } from "../../helpers/netlink-recorder";

/** The payload of the one request addRoute sends: the 12-byte rtmsg, then attributes. */
function sent(spec: Parameters<typeof addRoute>[1]): { header: Buffer; attrs: Map<number, Buffer> } {
  const { nl, sent: requests } = recorder();
  addRoute(nl, spec);
  const payload = requests[0]!.payload;
  return { header: payload.subarray(0, 12), attrs: attrMap(payload.subarray(12)) };
}

const RTA_PRIORITY = 6;
const RTA_METRICS = 8;
const RTA_TABLE = 15;

describe("addRoute", () => {
  it("names a table above 255 by RTA_TABLE alone, rtm_table unspecified", () => {
    const { header, attrs } = sent({ dst: "10.0.0.0/8", index: 3, table: 1000 });
    expect(header[4]).toBe(0);
    expect(attrs.get(RTA_TABLE)!.readUInt32LE(0)).toBe(1000);
    const small = sent({ dst: "10.0.0.0/8", index: 3, table: 100 });
    expect([small.header[4], small.attrs.get(RTA_TABLE)!.readUInt32LE(0)]).toEqual([100, 100]);
    expect(sent({ dst: "10.0.0.0/8", index: 3 }).header[4]).toBe(254); // main
  });

  it("puts mtu and advmss in RTA_METRICS, priority in RTA_PRIORITY, and a numeric scope in rtm_scope", () => {
    const { header, attrs } = sent({ dst: "10.0.0.0/8", index: 3, gw: "10.0.0.1", mtu: 1300, advmss: 1260, priority: 7, scope: 200 });
    const metrics = attrMap(attrs.get(RTA_METRICS)!);
    expect([metrics.get(2)!.readUInt32LE(0), metrics.get(8)!.readUInt32LE(0)]).toEqual([1300, 1260]);
    expect(attrs.get(RTA_PRIORITY)!.readUInt32LE(0)).toBe(7);
    expect(header[6]).toBe(200);
  });
});
