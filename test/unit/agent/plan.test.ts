import { describe, expect, it } from "vitest";
import { planFdb, planNeighbors, planRoutes } from "../../../agent/plan";

const PERMANENT = 0x80;
const REACHABLE = 0x02;
const NOARP = 0x40;

describe("planRoutes", () => {
  const r2 = { dst: "10.244.2.0/24", gw: "10.244.2.0", index: 7, onlink: true };
  const r3 = { dst: "10.244.3.0/24", gw: "10.244.3.0", index: 7, onlink: true };

  it("adds what is missing and leaves what is right", () => {
    expect(planRoutes([r2], [r2, r3])).toEqual([{ op: "add", want: r3 }]);
    expect(planRoutes([r2, r3], [r2, r3])).toEqual([]);
  });

  it("replaces a route that points elsewhere", () => {
    const direct = { dst: "10.244.2.0/24", gw: "192.168.50.12", index: 2, onlink: false };
    expect(planRoutes([r2], [direct])).toEqual([{ op: "replace", want: direct, have: r2 }]);
  });

  it("replaces one of ours that is no unicast route (a blackhole), however like the wanted one it is", () => {
    const blackhole = { ...r2, type: 6 };
    expect(planRoutes([blackhole], [r2])).toEqual([{ op: "replace", want: r2, have: blackhole }]);
  });

  it("replaces a multipath route, even one with the wanted next hop among its hops", () => {
    const hops = [
      { ...r2, multipath: true as const },
      { ...r2, gw: "10.244.9.0", multipath: true as const },
    ];
    expect(planRoutes(hops, [r2])).toEqual([
      { op: "delete", have: hops[1] },
      { op: "replace", want: r2, have: hops[0] },
    ]);
  });

  it("deletes our routes nobody wants, before changing anything", () => {
    expect(planRoutes([r2, r3], [r3, { ...r2, dst: "10.244.4.0/24", gw: "10.244.4.0" }])).toEqual([
      { op: "delete", have: r2 },
      { op: "add", want: { ...r2, dst: "10.244.4.0/24", gw: "10.244.4.0" } },
    ]);
  });

  it("keeps one of several routes to a destination and drops the others", () => {
    const metric = { ...r2, priority: 100 };
    expect(planRoutes([metric, r2], [r2])).toEqual([{ op: "delete", have: metric }]);
    // None right: the metric-0 one is replaced, the other deleted.
    const wrong = { ...r2, gw: "10.244.9.0" };
    const want = { ...r2 };
    expect(planRoutes([metric, wrong], [want])).toEqual([
      { op: "delete", have: metric },
      { op: "replace", want, have: wrong },
    ]);
  });
});

describe("planNeighbors", () => {
  it("adds, fixes a wrong MAC or a non-permanent state, deletes strays but not NOARP entries", () => {
    const have = [
      { ip: "10.244.2.0", mac: "0e:fe:00:00:00:02", state: PERMANENT },
      { ip: "10.244.3.0", mac: "0e:fe:00:00:00:99", state: PERMANENT },
      { ip: "10.244.4.0", mac: "0e:fe:00:00:00:04", state: REACHABLE },
      { ip: "10.244.9.0", mac: "0e:fe:00:00:00:09", state: PERMANENT },
      { ip: "10.244.1.255", state: NOARP },
    ];
    const want = [
      { ip: "10.244.2.0", mac: "0e:fe:00:00:00:02" },
      { ip: "10.244.3.0", mac: "0e:fe:00:00:00:03" },
      { ip: "10.244.4.0", mac: "0e:fe:00:00:00:04" },
      { ip: "10.244.5.0", mac: "0e:fe:00:00:00:05" },
    ];
    expect(planNeighbors(have, want)).toEqual([
      { op: "delete", have: have[3] },
      { op: "replace", want: { ip: "10.244.3.0", mac: "0e:fe:00:00:00:03", state: PERMANENT }, have: have[1] },
      { op: "replace", want: { ip: "10.244.4.0", mac: "0e:fe:00:00:00:04", state: PERMANENT }, have: have[2] },
      { op: "add", want: { ip: "10.244.5.0", mac: "0e:fe:00:00:00:05", state: PERMANENT } },
    ]);
  });
});

describe("planFdb", () => {
  const m2 = "0e:fe:c0:a8:32:0c";
  const m3 = "0e:fe:c0:a8:32:0d";

  it("adds missing entries, replaces a wrong remote, deletes unwanted MACs", () => {
    const have = [
      { mac: m2, dst: "192.168.50.99" },
      { mac: "0e:fe:00:00:00:01", dst: "192.168.50.1" },
    ];
    expect(planFdb(have, [{ mac: m2, dst: "192.168.50.12" }, { mac: m3, dst: "192.168.50.13" }])).toEqual([
      { op: "delete", have: { mac: "0e:fe:00:00:00:01" } }, // whole, every remote at once
      { op: "replace", want: { mac: m2, dst: "192.168.50.12" }, have: have[0] },
      { op: "add", want: { mac: m3, dst: "192.168.50.13" } },
    ]);
  });

  it("keeps the right remote of a MAC and deletes the extra ones", () => {
    const have = [
      { mac: m2, dst: "192.168.50.99" },
      { mac: m2, dst: "192.168.50.12" },
    ];
    expect(planFdb(have, [{ mac: m2, dst: "192.168.50.12" }])).toEqual([{ op: "delete", have: have[0] }]);
    expect(planFdb([have[1]!], [{ mac: m2, dst: "192.168.50.12" }])).toEqual([]);
  });

  it("takes a remote with a port, VNI or interface of its own for a wrong one", () => {
    const want = { mac: m2, dst: "192.168.50.12" };
    const odd = { ...want, port: 9999 };
    expect(planFdb([odd], [want])).toEqual([{ op: "replace", want, have: odd }]);
    // Beside the right one, even listed first: the right one stays, the odd one goes (named by its VNI).
    expect(planFdb([{ ...want, vni: 7 }, want], [want])).toEqual([{ op: "delete", have: { ...want, vni: 7 } }]);
  });
});
