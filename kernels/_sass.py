"""What the compiler produced: a pure reading of NVIDIA's disassembly (``cuobjdump -sass`` text).

No compiler is needed here: the functions take the text and return figures, so they are tested
on committed SASS snippets. The driver that compiles and disassembles is
:mod:`kernels._profile`.

What is read, per function:

- instructions: address, guard predicate, opcode, operands and, where the text carries the
  encodings (``cuobjdump -sass`` prints each 128-bit instruction as two 64-bit words), the
  control bits of Volta and later (bits 105-125: stall cycles, yield, write and read
  scoreboard, wait mask, reuse; Jia et al., "Dissecting the NVIDIA Volta GPU Architecture via
  Microbenchmarking", 2018, section 2.2);
- loops: a backward branch closes a loop; the hot loop is the innermost loop that holds row
  loads, preferring the one with the fewest other global loads per row load (the plain sum
  path, not the per-sample-weight copy the compiler makes) and then the most row loads (the
  unrolled main loop, not its remainder);
- global loads by kind: a *row* load reads an address computed from a value another global
  load brought in (through integer arithmetic, moves and shuffles); an *index* load is a load
  whose value reaches a row load's address; every other global load is *other*;
- row loads in flight per warp: the loop body walked twice in instruction order (the second
  walk is the steady state across the back edge). With the control bits, a load is in flight
  from its issue until an instruction waits on its scoreboard (a wait clears every load on
  that scoreboard; ``DEPBAR.LE SBk, n`` leaves the n youngest); without them, until an
  instruction reads or overwrites a register it writes (the register rule);
- the chain from an index load to the accumulation, as (opcode, latency class) pairs.

Branches inside a loop body are walked as straight-line code (both sides), which is exact for
the predicated bodies the lookup kernels compile to and an upper bound otherwise.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

__all__ = [
    "PIPES",
    "Control",
    "Instruction",
    "LoopAnalysis",
    "analyze_function",
    "find_loops",
    "parse_sass",
    "pipe_of",
]

#: instruction classes of ``instructions_per_lookup``
PIPES = ("integer", "fp32", "fp16", "conversion", "memory", "shuffle", "control", "uniform", "other")

_INTEGER = {
    "IMAD", "IADD3", "IADD", "IADD32I", "LEA", "LOP3", "LOP", "SHF", "SHL", "SHR", "ISETP", "SEL", "MOV", "MOV32I",
    "IMNMX", "VIMNMX", "PRMT", "IABS", "FLO", "POPC", "BFE", "BFI", "P2R", "R2P", "PLOP3", "IMUL", "IDP", "VIADD",
    "BMSK", "BREV", "ICMP", "IMUL32I", "XMAD", "CS2R", "LEPC", "IMNMX3",
}
_FP32 = {"FADD", "FFMA", "FMUL", "FSEL", "FSETP", "FMNMX", "FCHK", "FSET", "FADD32I", "FFMA32I", "FMUL32I", "FSWZADD"}
_FP16 = {"HADD2", "HFMA2", "HMUL2", "HSETP2", "HMNMX2", "HSET2"}
_CONVERSION = {"F2F", "I2F", "F2I", "I2I", "F2FP", "FRND", "MUFU", "I2FP", "F2IP"}
_MEMORY = {"LDG", "STG", "LD", "ST", "LDS", "STS", "LDL", "STL", "ATOM", "ATOMG", "ATOMS", "RED", "LDC", "CCTL",
           "LDGSTS", "LDSM", "CCTLL", "ERRBAR", "MEMBAR", "LDGDEPBAR", "ULDC"}
_SHUFFLE = {"SHFL", "VOTE", "MATCH", "REDUX", "VOTEU"}
_CONTROL = {"BRA", "BRX", "JMP", "JMX", "CALL", "RET", "EXIT", "BSSY", "BSYNC", "WARPSYNC", "BAR", "YIELD", "NOP",
            "BMOV", "BREAK", "KILL", "DEPBAR", "BPT", "NANOSLEEP", "ELECT", "ACQBULK"}
#: an instruction that adds into an accumulator (the end of the chain)
_ACCUMULATE = {"FADD", "FFMA", "HADD2", "HFMA2"}
#: loads that read global memory
_GLOBAL_LOADS = {"LDG", "LD"}


def pipe_of(opcode: str) -> str:
    """The instruction class of an opcode (its mnemonic before the first dot)."""
    base = opcode.split(".", 1)[0]
    if base in _MEMORY and base != "ULDC":
        return "memory"
    if base.startswith("U") and base not in ("UNDEF",):
        return "uniform"
    for pipe, names in (("integer", _INTEGER), ("fp32", _FP32), ("fp16", _FP16), ("conversion", _CONVERSION),
                        ("shuffle", _SHUFFLE), ("control", _CONTROL)):
        if base in names:
            return pipe
    return "other"


def latency_class(opcode: str) -> str:
    """Latency class of one step of the chain: ``global`` and ``local`` (variable latency,
    memory), ``shuffle``, or the instruction's fixed-latency pipe."""
    base = opcode.split(".", 1)[0]
    if base in _GLOBAL_LOADS:
        return "global"
    if base in ("LDL", "STL"):
        return "local"
    return pipe_of(opcode)


@dataclass(frozen=True, kw_only=True)
class Control:
    """The control bits of one instruction (Volta and later)."""

    stall: int
    yield_: bool
    #: scoreboard the instruction's result sets (None: fixed latency)
    write_barrier: int | None
    read_barrier: int | None
    #: scoreboards waited on before the instruction issues (bit k = scoreboard k)
    wait_mask: int

    @staticmethod
    def from_high_word(hi: int) -> Control:
        ctl = hi >> 41
        wb, rb = (ctl >> 5) & 7, (ctl >> 8) & 7
        return Control(stall=ctl & 0xF, yield_=bool((ctl >> 4) & 1), write_barrier=None if wb == 7 else wb,
                       read_barrier=None if rb == 7 else rb, wait_mask=(ctl >> 11) & 0x3F)


_REG_RE = re.compile(r"(?<![\w.])(U?R)(\d+|Z)(?:\.(64|128|reuse|H0|H1|B\d|U32|X\d|H0_H0|H1_H1))*")
_DEST_LESS = {"ST", "STG", "STS", "STL", "RED", "BRA", "BRX", "JMP", "CALL", "RET", "EXIT", "BSSY", "BSYNC",
              "WARPSYNC", "BAR", "NOP", "DEPBAR", "YIELD", "BREAK", "KILL", "CCTL", "MEMBAR", "ERRBAR", "BPT"}


@dataclass(frozen=True, kw_only=True, eq=False)
class Instruction:
    """One SASS instruction."""

    address: int
    guard: str
    opcode: str
    operands: tuple[str, ...]
    control: Control | None = None

    @cached_property
    def base(self) -> str:
        return self.opcode.split(".", 1)[0]

    @property
    def text(self) -> str:
        ops = ", ".join(self.operands)
        return f"{self.guard + ' ' if self.guard else ''}{self.opcode}{' ' + ops if ops else ''}"

    @property
    def is_global_load(self) -> bool:
        return self.base in _GLOBAL_LOADS and not self.opcode.startswith(("LDGSTS", "LDGDEPBAR"))

    @property
    def is_store(self) -> bool:
        return self.base in ("ST", "STG", "STS", "STL", "RED", "ATOM", "ATOMG", "ATOMS")

    @cached_property
    def _dests(self) -> tuple[str, ...]:
        return self._dest_registers()

    @cached_property
    def _srcs(self) -> tuple[str, ...]:
        return self._source_registers()

    def dest_registers(self) -> tuple[str, ...]:
        """General registers written (a 64-bit or 128-bit load writes 2 or 4)."""
        return self._dests

    def source_registers(self) -> tuple[str, ...]:
        """General registers read (a `.64` address or wide operand reads a pair)."""
        return self._srcs

    def _dest_registers(self) -> tuple[str, ...]:
        if self.base in _DEST_LESS or not self.operands:
            return ()
        first = self.operands[0]
        if self.base == "SHFL" and re.match(r"^!?U?P(T|\d)", first) and len(self.operands) > 1:
            first = self.operands[1]
        m = re.match(r"^(U?R)(\d+)", first)
        if not m:
            return ()
        width = 1
        if self.base in ("LDG", "LD", "LDS", "LDL", "LDC", "ULDC", "ATOM", "ATOMG", "SHFL", "LDSM"):
            for w, n in ((".128", 4), (".64", 2)):
                if w in self.opcode:
                    width = n
                    break
        elif ".WIDE" in self.opcode or (self.base in ("CS2R",) and ".64" not in first) or (self.base in ("F2F", "I2F", "F2I", "I2I") and ".F64" in self.opcode.split(".", 1)[-1][:8]):
            width = 2
        kind, num = m.group(1), int(m.group(2))
        return tuple(f"{kind}{num + k}" for k in range(width))

    def _source_registers(self) -> tuple[str, ...]:
        ops = self.operands if (self.base in _DEST_LESS or self.is_store) else self.operands[1:]
        if self.base == "SHFL" and ops and re.match(r"^(U?R)(\d+|Z)", ops[0]):
            ops = ops[1:]
        if self.base in ("ATOM", "ATOMG", "ATOMS"):
            ops = self.operands[1:]
        out: list[str] = []
        wide_third = ".WIDE" in self.opcode
        for pos, op in enumerate(ops):
            for m in _REG_RE.finditer(op):
                if m.group(2) == "Z":
                    continue
                kind, num = m.group(1), int(m.group(2))
                width = 2 if ".64" in m.group(0) or (wide_third and pos == 2) else 1
                if ".128" in m.group(0):
                    width = 4
                out.extend(f"{kind}{num + k}" for k in range(width))
        # predicated instructions keep the old value when off: a guarded write reads its destination
        return tuple(out)


_FUNC_RE = re.compile(r"^\s*Function\s*:\s*(\S+)")
_NVDISASM_FUNC_RE = re.compile(r"^\s*\.text\.(\S+?):")
_INS_RE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);(?:\s*/\*\s*(0x[0-9a-f]+)\s*\*/)?")
_ENC_RE = re.compile(r"^\s*/\*\s*(0x[0-9a-f]{16})\s*\*/\s*$")


def _split_operands(text: str) -> tuple[str, ...]:
    ops: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            ops.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        ops.append("".join(cur).strip())
    return tuple(ops)


def parse_sass(text: str) -> dict[str, list[Instruction]]:
    """Instructions per function of ``cuobjdump -sass`` (or ``nvdisasm``) text, in address order.

    Control bits are read where the text carries each instruction's two encoding words.
    """
    funcs: dict[str, list[Instruction]] = {}
    current: list[Instruction] | None = None
    pending: tuple[int, str, str, tuple[str, ...]] | None = None
    lines = text.splitlines()
    for line in lines:
        m = _FUNC_RE.match(line) or _NVDISASM_FUNC_RE.match(line)
        if m:
            if pending is not None and current is not None:
                current.append(Instruction(address=pending[0], guard=pending[1], opcode=pending[2],
                                           operands=pending[3]))
                pending = None
            current = funcs.setdefault(m.group(1), [])
            continue
        if current is None:
            continue
        m = _INS_RE.match(line)
        if m:
            if pending is not None:
                current.append(Instruction(address=pending[0], guard=pending[1], opcode=pending[2],
                                           operands=pending[3]))
            pending = (int(m.group(1), 16), (m.group(2) or "").strip(), m.group(3), _split_operands(m.group(4)))
            if m.group(5) is None:  # no encoding on the line (nvdisasm): no control bits
                current.append(Instruction(address=pending[0], guard=pending[1], opcode=pending[2],
                                           operands=pending[3]))
                pending = None
            continue
        m = _ENC_RE.match(line)
        if m and pending is not None:
            current.append(Instruction(address=pending[0], guard=pending[1], opcode=pending[2], operands=pending[3],
                                       control=Control.from_high_word(int(m.group(1), 16))))
            pending = None
    if pending is not None and current is not None:
        current.append(Instruction(address=pending[0], guard=pending[1], opcode=pending[2], operands=pending[3]))
    return funcs


_BRA_TARGET_RE = re.compile(r"^(?:0x)?([0-9a-f]+)$")


def _branch_target(ins: Instruction, labels: dict[str, int]) -> int | None:
    if ins.base not in ("BRA", "JMP") or not ins.operands:
        return None
    op = ins.operands[-1].strip()
    m = re.search(r"`\(([^)]+)\)", op)
    if m:
        return labels.get(m.group(1))
    m = _BRA_TARGET_RE.match(op)
    return int(m.group(1), 16) if m else None


def _successors(instructions: Sequence[Instruction], labels: dict[str, int]) -> list[list[int]]:
    """Control-flow successors of each instruction. ``BRA.DIV`` (taken only when the warp has
    diverged, to an out-of-line slow path) and calls (they return) are not followed."""
    index_of = {ins.address: k for k, ins in enumerate(instructions)}
    out: list[list[int]] = []
    n = len(instructions)
    for k, ins in enumerate(instructions):
        nxt = [k + 1] if k + 1 < n else []
        if ins.base in ("EXIT", "RET", "KILL") and not ins.guard:
            out.append([])
            continue
        if ins.base in ("BRA", "JMP") and ".DIV" not in ins.opcode:
            tgt = _branch_target(ins, labels)
            succ = [index_of[tgt]] if tgt is not None and tgt in index_of else []
            out.append(succ + nxt if ins.guard else succ)
            continue
        out.append(nxt)
    return out


def find_loops(instructions: Sequence[Instruction], labels: dict[str, int] | None = None) -> list[tuple[int, int]]:
    """(first index, last index) of every natural loop (a backward branch to an instruction that
    dominates it, in the code reachable from the entry), innermost first. The backward jumps
    that return from out-of-line blocks (divergent-shuffle paths, assert calls) are not loops."""
    succ = _successors(instructions, labels or {})
    n = len(instructions)
    if n == 0:
        return []
    # basic blocks: leaders are the entry, branch targets and what follows a branch
    leaders = {0}
    for k, ss in enumerate(succ):
        if len(ss) != 1 or ss[0] != k + 1:
            leaders.update(ss)
            if k + 1 < n:
                leaders.add(k + 1)
    starts = sorted(leaders)
    block_of = [0] * n
    for b, st in enumerate(starts):
        end = starts[b + 1] if b + 1 < len(starts) else n
        for k in range(st, end):
            block_of[k] = b
    nb = len(starts)
    bsucc: list[set[int]] = [set() for _ in range(nb)]
    for b in range(nb):
        last = (starts[b + 1] if b + 1 < nb else n) - 1
        bsucc[b] = {block_of[t] for t in succ[last]}
    # reachable blocks in reverse post-order, then iterative dominators
    order: list[int] = []
    seen = {0}
    stack: list[tuple[int, list[int]]] = [(0, sorted(bsucc[0]))]
    while stack:
        b, rest = stack[-1]
        if rest:
            c = rest.pop(0)
            if c not in seen:
                seen.add(c)
                stack.append((c, sorted(bsucc[c])))
        else:
            order.append(b)
            stack.pop()
    rpo = order[::-1]
    preds: dict[int, set[int]] = {b: set() for b in rpo}
    for b in rpo:
        for c in bsucc[b]:
            if c in preds:
                preds[c].add(b)
    dom: dict[int, set[int]] = {b: set(rpo) for b in rpo}
    dom[0] = {0}
    changed = True
    while changed:
        changed = False
        for b in rpo[1:]:
            ps = [dom[p] for p in preds[b]]
            new = set.intersection(*ps) | {b} if ps else {b}
            if new != dom[b]:
                dom[b] = new
                changed = True
    loops = set()
    for b in rpo:
        for h in bsucc[b]:
            if h in dom[b] and starts[h] <= starts[b]:
                last = (starts[b + 1] if b + 1 < nb else n) - 1
                loops.add((starts[h], last))
    return sorted(loops, key=lambda se: se[1] - se[0])


# ---- data flow -----------------------------------------------------------------------------


class _Flow:
    """Reaching definitions of registers, approximated in instruction order: inside a loop a
    read sees the last write before it in the body and, past the loop's start, the writes from
    the body's end (the back edge); a guarded write does not hide earlier ones."""

    def __init__(self, instructions: Sequence[Instruction], loops: Sequence[tuple[int, int]]) -> None:
        self.ins = instructions
        self.loops = loops
        self.dests = [set(i.dest_registers()) for i in instructions]
        self.srcs = [i.source_registers() for i in instructions]

    def _loop_of(self, k: int) -> tuple[int, int] | None:
        for s, e in self.loops:  # innermost first
            if s <= k <= e:
                return (s, e)
        return None

    def defs(self, k: int, reg: str, limit: tuple[int, int] | None) -> list[int]:
        """Writes of ``reg`` that reach instruction ``k``, searched within ``limit`` (a loop:
        its body with the back edge); None: the loop around k."""
        loop = limit if limit is not None else self._loop_of(k)
        guard = self.ins[k].guard
        out: list[int] = []
        lo = loop[0] if loop else 0
        order = list(range(k - 1, lo - 1, -1))
        if loop is not None:
            order += list(range(loop[1], k - 1, -1))
        for j in order:
            if reg in self.dests[j]:
                out.append(j)
                # an unguarded write hides older ones; so does a write under the reader's own guard
                if not self.ins[j].guard or self.ins[j].guard == guard:
                    return out
        return out


@dataclass(frozen=True, kw_only=True)
class LoopAnalysis:
    """The figures of one function's hot loop (see the module docstring)."""

    start: int
    end: int
    instructions: int
    by_pipe: dict[str, int]
    row_loads: int
    index_loads: int
    other_loads: int
    local_ops: int
    row_loads_in_flight: int
    in_flight_method: str
    #: row loads in flight by the register rule (equals the above where no control bits)
    row_loads_in_flight_registers: int
    index_on_row_chain: bool
    chain: tuple[tuple[str, str], ...]
    #: index loads (and the instructions) of the enclosing loop, outside the hot loop
    outer_index_loads: int = 0
    outer_instructions: int = 0
    outer_by_pipe: dict[str, int] = field(default_factory=dict)
    #: a validation loop beside the hot loop (loads indices, no rows): its instructions and
    #: loads per iteration (PyTorch's current kernel checks every index in such a loop)
    check_loop_instructions: int = 0
    check_loop_loads: int = 0
    check_loop_by_pipe: dict[str, int] = field(default_factory=dict)


class _Tracer:
    """Longest dependency path from a global load to a value, through non-load instructions
    (memoized; a cycle of induction variables holds no load). A shuffle's source is followed
    into the enclosing loop, since a warp may load indices there and pass them by shuffle."""

    def __init__(self, flow: _Flow, loop: tuple[int, int], outer: tuple[int, int] | None) -> None:
        self.flow = flow
        self.loop = loop
        self.outer = outer
        self.memo: dict[tuple[int, bool], list[int] | None] = {}
        self.busy: set[tuple[int, bool]] = set()

    def regs(self, k: int, regs: Iterable[str], in_outer: bool = False) -> list[list[int]]:
        """A path per (register, reaching write) that carries a loaded value into ``regs`` at k."""
        out = []
        limit = self.outer if in_outer and self.outer is not None else self.loop
        for reg in regs:
            for d in self.flow.defs(k, reg, limit):
                p = self.value(d, in_outer)
                if p is not None:
                    out.append(p)
        return out

    def value(self, d: int, in_outer: bool) -> list[int] | None:
        key = (d, in_outer)
        if key in self.memo:
            return self.memo[key]
        if key in self.busy:
            return None
        ins = self.flow.ins[d]
        if ins.is_global_load:
            self.memo[key] = [d]
            return [d]
        if ins.base == "LDL":  # a spilled value: follow the store to the same stack slot
            self.busy.add(key)
            slot = ins.operands[1] if len(ins.operands) > 1 else ""
            limit = self.outer if in_outer and self.outer is not None else self.loop
            paths = []
            for j in range(limit[0], limit[1] + 1):
                st = self.flow.ins[j]
                if st.base == "STL" and st.operands and st.operands[0] == slot and len(st.operands) > 1:
                    regs = [r for r in st.source_registers() if not r.startswith("UR")]
                    stored = [r for r in regs if r not in Instruction(address=0, guard="", opcode="NOP",
                                                                      operands=(slot,)).source_registers()]
                    paths += [[*p, j] for p in self.regs(j, stored, in_outer)]
            self.busy.discard(key)
            best = max(paths, key=len) if paths else None
            res = [*best, d] if best is not None else None
            self.memo[key] = res
            return res
        if ins.base in ("LDS", "LDC", "S2R", "CS2R", "S2UR", "ULDC"):
            self.memo[key] = None
            return None
        self.busy.add(key)
        srcs = [r for r in self.flow.srcs[d] if not r.startswith("UR")]
        nested = in_outer or ins.base == "SHFL"
        if ins.base == "SHFL":
            srcs = srcs[:1]  # the value shuffled, not the lane or the clamp
        paths = self.regs(d, srcs, nested)
        self.busy.discard(key)
        best = max(paths, key=len) if paths else None
        res = [*best, d] if best is not None else None
        self.memo[key] = res
        return res


def _address_registers(ins: Instruction) -> tuple[str, ...]:
    for op in ins.operands:
        if op.startswith("[") or "[" in op:
            inner = op[op.rindex("[") :]
            return tuple(r for r in Instruction(address=0, guard="", opcode="NOP", operands=(inner,)).source_registers()
                         if not r.startswith("UR"))
    return ()


@lru_cache(maxsize=8)
def _empty() -> dict[str, int]:
    return dict.fromkeys(PIPES, 0)


def _mix(instructions: Iterable[Instruction]) -> dict[str, int]:
    out = dict(_empty())
    for i in instructions:
        out[pipe_of(i.opcode)] += 1
    return out


def _in_flight(body: Sequence[Instruction], rows: set[int], use_control: bool) -> int:
    """Most row loads issued and not yet waited for, over two walks of the loop body."""
    best = 0
    if use_control:
        outstanding: dict[int, list[int]] = {}  # scoreboard -> load positions (oldest first)
        for _walk in range(2):
            for k, ins in enumerate(body):
                c = ins.control
                assert c is not None
                if c.wait_mask:
                    for sb in range(6):
                        if c.wait_mask >> sb & 1:
                            outstanding.pop(sb, None)
                if ins.base == "DEPBAR" and ins.operands:
                    m = re.match(r"SB(\d)", ins.operands[0].replace(".LE", "").strip())
                    n = re.search(r"0x([0-9a-f]+)|(\d+)$", ins.operands[-1])
                    if m and n:
                        keep = int(n.group(1), 16) if n.group(1) else int(n.group(2))
                        sb = int(m.group(1))
                        lst = outstanding.get(sb, [])
                        outstanding[sb] = lst[len(lst) - keep:] if keep else []
                if c.write_barrier is not None:
                    outstanding.setdefault(c.write_barrier, []).append(k)
                    n_rows = sum(1 for lst in outstanding.values() for p in lst if p in rows)
                    if _walk == 1:
                        best = max(best, n_rows)
        return best
    live: dict[int, set[str]] = {}
    srcs_of = [set(i.source_registers()) for i in body]
    dests_of = [set(i.dest_registers()) for i in body]
    for _walk in range(2):
        for k in range(len(body)):
            srcs, dests = srcs_of[k], dests_of[k]
            for p in [p for p, regs in live.items() if regs & srcs or (regs & dests and p != k)]:
                del live[p]
            if k in rows:
                live[k] = set(dests)
                if _walk == 1:
                    best = max(best, len(live))
    return best


def cold_blocks(instructions: Sequence[Instruction], labels: dict[str, int] | None = None) -> set[int]:
    """Indices of out-of-line failure paths: the instructions a guarded forward branch skips when
    the skipped block (under 40 instructions) calls a function (the assert handler) with no
    global load before the call (loads after it re-read what the call may have changed; a
    block that loads first is a guarded piece of work, not a failure path). A device assert's
    call sits inside the loop but runs only for a bad index."""
    index_of = {ins.address: k for k, ins in enumerate(instructions)}
    cold: set[int] = set()
    for k, ins in enumerate(instructions):
        tgt = _branch_target(ins, labels or {})
        if tgt is None or not ins.guard or tgt <= ins.address or tgt not in index_of:
            continue
        block = range(k + 1, index_of[tgt])
        calls = [j for j in block if instructions[j].base == "CALL"]
        if len(block) < 40 and calls and not any(instructions[j].is_global_load for j in range(k + 1, calls[0])):
            cold.update(block)
    return cold


def analyze_function(instructions: Sequence[Instruction], *, labels: dict[str, int] | None = None) -> LoopAnalysis:
    """Figures of the hot loop of one function (see the module docstring). ValueError where no
    loop holds a row load. Out-of-line failure paths (:func:`cold_blocks`) are left out."""
    cold = cold_blocks(instructions, labels)
    if cold:
        kept = [ins for k, ins in enumerate(instructions) if k not in cold]
        # a branch into a dropped block now lands on the block's end: keep addresses as they are
        instructions = kept
    loops = find_loops(instructions, labels)
    flow = _Flow(instructions, loops)
    best: tuple[tuple[float, int, float], LoopAnalysis] | None = None
    innermost = [(s, e) for s, e in loops if not any(s <= s2 and e2 <= e and (s2, e2) != (s, e) for s2, e2 in loops)]
    for s, e in innermost:
        outer = next(((s2, e2) for s2, e2 in loops if s2 <= s and e <= e2 and (s2, e2) != (s, e)), None)
        body = instructions[s : e + 1]
        tracer = _Tracer(flow, (s, e), outer)
        rows: dict[int, list[list[int]]] = {}
        for k in range(s, e + 1):
            ins = instructions[k]
            if ins.is_global_load:
                paths = tracer.regs(k, _address_registers(ins))
                if paths:
                    rows[k] = paths
        if not rows:
            continue
        index_positions = {p[0] for paths in rows.values() for p in paths}
        inner_index = {k for k in index_positions if s <= k <= e}
        # loads from the index array that feed no row address (a second read of an index, e.g.
        # for the padding test) share an index load's base address register
        index_bases = {_address_registers(instructions[k])[:1] for k in inner_index}
        inner_index |= {k for k in range(s, e + 1) if instructions[k].is_global_load and k not in rows
                        and _address_registers(instructions[k])[:1] in index_bases}
        outer_index = index_positions - inner_index
        loads = [k for k in range(s, e + 1) if instructions[k].is_global_load]
        other = [k for k in loads if k not in rows and k not in inner_index]
        use_control = all(i.control is not None for i in body)
        rel_rows = {k - s for k in rows}
        in_flight_regs = _in_flight(body, rel_rows, use_control=False)
        in_flight = _in_flight(body, rel_rows, use_control=True) if use_control else in_flight_regs
        # chain: the longest path from an index load to a row load's address, the row load, and
        # its consumers up to the accumulation
        first_row = min(rows)
        path = max(rows[first_row], key=len)
        chain_idx = [*path, first_row]
        chain_idx.extend(_to_accumulation(flow, first_row, (s, e)))
        index_on_chain = any(s <= p[0] <= e and p[0] != k for k, ps in rows.items() for p in ps if len(p) > 0
                             and _same_iteration(p[0], k))
        outer_ins: list[Instruction] = []
        if outer is not None and outer_index:
            nested = [(s2, e2) for s2, e2 in loops if outer[0] <= s2 and e2 <= outer[1] and (s2, e2) != outer]
            outer_ins = [instructions[k] for k in range(outer[0], outer[1] + 1)
                         if not any(s2 <= k <= e2 for s2, e2 in nested)]
        la = LoopAnalysis(
            start=instructions[s].address,
            end=instructions[e].address,
            instructions=len(body),
            by_pipe=_mix(body),
            row_loads=len(rows),
            index_loads=len(inner_index),
            other_loads=len(other),
            local_ops=sum(1 for i in body if i.base in ("LDL", "STL")),
            row_loads_in_flight=in_flight,
            in_flight_method="scoreboard" if use_control else "registers",
            row_loads_in_flight_registers=in_flight_regs,
            index_on_row_chain=index_on_chain,
            chain=tuple((instructions[k].opcode, latency_class(instructions[k].opcode)) for k in chain_idx),
            outer_index_loads=len({k for k in outer_index}),
            outer_instructions=len(outer_ins),
            outer_by_pipe=_mix(outer_ins) if outer_ins else {},
        )
        key = (len(other) / len(rows), -len(rows), len(body) / len(rows))
        if best is None or key < best[0]:
            best = (key, la)
    if best is None:
        raise ValueError("no loop with row loads (loads whose address comes from another load's value)")
    hot = best[1]
    hs = next(k for k, i in enumerate(instructions) if i.address == hot.start)
    he = next(k for k, i in enumerate(instructions) if i.address == hot.end)
    enclosing = next(((s2, e2) for s2, e2 in loops if s2 <= hs and he <= e2 and (s2, e2) != (hs, he)), None)
    check: tuple[int, int, dict[str, int]] | None = None
    for s, e in innermost:
        if (s, e) == (hs, he) or (enclosing is not None and not (enclosing[0] <= s and e <= enclosing[1])):
            continue
        here = next(((s2, e2) for s2, e2 in loops if s2 <= s and e <= e2 and (s2, e2) != (s, e)), None)
        if here != enclosing:
            continue
        loads = [k for k in range(s, e + 1) if instructions[k].is_global_load]
        tracer = _Tracer(flow, (s, e), None)
        if not loads or any(tracer.regs(k, _address_registers(instructions[k])) for k in loads):
            continue
        if check is None or len(loads) > check[1]:
            check = (e - s + 1, len(loads), _mix(instructions[s : e + 1]))
    if check is not None:
        hot = dataclasses.replace(hot, check_loop_instructions=check[0], check_loop_loads=check[1],
                                  check_loop_by_pipe=check[2])
    return hot


def _same_iteration(index_pos: int, row_pos: int) -> bool:
    """The index load precedes the row load in the body (not carried over the back edge)."""
    return index_pos < row_pos


def _to_accumulation(flow: _Flow, k: int, loop: tuple[int, int]) -> list[int]:
    """Instructions from the row load at ``k`` to the first accumulation its value reaches
    (following first readers in the loop body, at most 6 steps)."""
    out: list[int] = []
    regs = set(flow.ins[k].dest_registers())
    pos = k
    for _ in range(6):
        nxt = None
        s, e = loop
        order = list(range(pos + 1, e + 1)) + list(range(s, pos))
        for j in order:
            if regs & set(flow.srcs[j]):
                nxt = j
                break
            if regs <= flow.dests[j] and not flow.ins[j].guard:
                break
        if nxt is None:
            return out
        out.append(nxt)
        if flow.ins[nxt].base in _ACCUMULATE:
            return out
        regs = set(flow.ins[nxt].dest_registers())
        pos = nxt
    return out
