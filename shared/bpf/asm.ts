// A small eBPF assembler: instructions as the kernel takes them (8 bytes each,
// include/uapi/linux/bpf.h), jumps to named labels resolved when the program is put together.
type Size = 1 | 2 | 4 | 8;
const SIZE: Record<Size, number> = { 4: 0x00, 2: 0x08, 1: 0x10, 8: 0x18 };
const BPF_PSEUDO_MAP_FD = 1;
const BPF_PSEUDO_KFUNC_CALL = 2;

export interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
  /** a jump's target, resolved into `off` */
  to?: string;
}

/** One instruction, a label (a string), or a run of them (such as the two halves of a 64-bit load). */
export type Item = Insn | string | readonly Item[];

const insn = (code: number, dst: number, src: number, off: number, imm: number, to?: string): Insn => ({ code, dst, src, off, imm, ...(to ? { to } : {}) });

export const asm = {
  movImm: (dst: number, imm: number) => insn(0xb7, dst, 0, 0, imm),
  movReg: (dst: number, src: number) => insn(0xbf, dst, src, 0, 0),
  addImm: (dst: number, imm: number) => insn(0x07, dst, 0, 0, imm),
  andImm: (dst: number, imm: number) => insn(0x57, dst, 0, 0, imm),
  /** dst = *(size *)(src + off) */
  load: (size: Size, dst: number, src: number, off: number) => insn(0x61 | SIZE[size], dst, src, off, 0),
  /** *(size *)(dst + off) = src */
  store: (size: Size, dst: number, off: number, src: number) => insn(0x63 | SIZE[size], dst, src, off, 0),
  /** *(size *)(dst + off) = imm */
  storeImm: (size: Size, dst: number, off: number, imm: number) => insn(0x62 | SIZE[size], dst, 0, off, imm),
  /** dst = the map `fd` refers to */
  loadMap: (dst: number, fd: number): Insn[] => [insn(0x18, dst, BPF_PSEUDO_MAP_FD, 0, fd), insn(0, 0, 0, 0, 0)],
  jeqImm: (dst: number, imm: number, to: string) => insn(0x15, dst, 0, 0, imm, to),
  jneImm: (dst: number, imm: number, to: string) => insn(0x55, dst, 0, 0, imm, to),
  /** the same on the registers' low 32 bits */
  jne32Imm: (dst: number, imm: number, to: string) => insn(0x56, dst, 0, 0, imm, to),
  jltImm: (dst: number, imm: number, to: string) => insn(0xa5, dst, 0, 0, imm, to),
  jneReg: (dst: number, src: number, to: string) => insn(0x5d, dst, src, 0, 0, to),
  jgtReg: (dst: number, src: number, to: string) => insn(0x2d, dst, src, 0, 0, to),
  ja: (to: string) => insn(0x05, 0, 0, 0, 0, to),
  call: (helper: number) => insn(0x85, 0, 0, 0, helper),
  /** a kernel function by its BTF type ID in vmlinux */
  callKfunc: (btfId: number) => insn(0x85, 0, BPF_PSEUDO_KFUNC_CALL, 0, btfId),
  exit: () => insn(0x95, 0, 0, 0, 0),
};

const isRun = (item: Item): item is readonly Item[] => Array.isArray(item);

/** The program's bytes, labels resolved. */
export function assemble(items: Item[]): Uint8Array {
  const flat: Insn[] = [];
  const labels = new Map<string, number>();
  const put = (item: Item): void => {
    if (typeof item === "string") labels.set(item, flat.length);
    else if (isRun(item)) item.forEach(put);
    else flat.push(item);
  };
  items.forEach(put);
  const out = new Uint8Array(flat.length * 8);
  const v = new DataView(out.buffer);
  flat.forEach((i, n) => {
    let off = i.off;
    if (i.to !== undefined) {
      const target = labels.get(i.to);
      if (target === undefined) throw new Error(`no label ${i.to}`);
      off = target - (n + 1);
    }
    v.setUint8(n * 8, i.code);
    v.setUint8(n * 8 + 1, (i.src << 4) | i.dst);
    v.setInt16(n * 8 + 2, off, true);
    v.setInt32(n * 8 + 4, i.imm, true);
  });
  return out;
}
