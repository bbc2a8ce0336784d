import { describe, expect, it } from "vitest";
import { attempt } from "../../shared/attempt";

describe("attempt", () => {
  it("records each failure and lets the later steps run", () => {
    const failures: string[] = [];
    const ran: string[] = [];
    attempt(failures, () => {
      ran.push("a");
      throw new Error("a broke");
    }, "step a");
    attempt(failures, () => void ran.push("b"), "step b");
    attempt(failures, () => {
      throw "not an Error";
    });
    expect(ran).toEqual(["a", "b"]);
    expect(failures).toEqual(["step a: a broke", "not an Error"]);
  });
});
