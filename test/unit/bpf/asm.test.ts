import { describe, expect, it } from "vitest";
import { asm, assemble } from "../../../shared/bpf/asm";

const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

describe("assemble", () => {
  it("encodes instructions as the kernel reads them: opcode, dst and src registers, offset, immediate", () => {
    expect(hex(assemble([asm.movImm(0, -1), asm.exit()]))).toBe("b7000000ffffffff" + "9500000000000000");
    // r2 = *(u32 *)(r6 + 76); *(u16 *)(r10 - 4) = r5; *(u32 *)(r10 - 40) = -1
    expect(hex(assemble([asm.load(4, 2, 6, 76), asm.store(2, 10, -4, 5), asm.storeImm(4, 10, -40, -1)]))).toBe(
      "61624c0000000000" + "6b5afcff00000000" + "620ad8ffffffffff",
    );
    // A map by fd is a two-slot 64-bit load, its source register BPF_PSEUDO_MAP_FD; a kfunc call has BPF_PSEUDO_KFUNC_CALL.
    expect(hex(assemble([asm.loadMap(1, 7), asm.callKfunc(65660)]))).toBe("1811000007000000" + "0000000000000000" + "852000007c000100");
  });

  it("resolves jumps to labels, forward and back, counting a 64-bit load as two slots", () => {
    const code = assemble(["top", asm.jeqImm(0, 0, "end"), asm.loadMap(1, 3), asm.ja("top"), "end", asm.exit()]);
    const off = (i: number) => new DataView(code.buffer).getInt16(i * 8 + 2, true);
    expect(off(0)).toBe(3); // over the load's two slots and the ja
    expect(off(3)).toBe(-4); // back to the first instruction
    expect(() => assemble([asm.ja("nowhere")])).toThrow(/no label nowhere/);
  });

  it("takes runs nested in runs, labels inside them included, and the comparisons the fast path uses", () => {
    // if r1 < 2 goto end; if r1 != r3 goto end; end: exit
    const code = assemble([[asm.jltImm(1, 2, "end"), [asm.jneReg(1, 3, "end"), "end"]], asm.exit()]);
    expect(hex(code)).toBe("a501010002000000" + "5d31000000000000" + "9500000000000000");
  });
});
