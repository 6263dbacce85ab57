"""The SASS reader (kernels/_sass.py) on committed disassembly, no compiler needed.

Fixtures (tests/fixtures/sass/*.sass) are the hot loops of real compiles (NVRTC 13.5.37,
cuobjdump 13.5.37), trimmed to the loop; their headers name the source and options. Oracles:
the control bits as NVIDIA's encoding carries them (the scoreboard a load sets and the ones an
instruction waits on, checked by hand below on one instruction pair), and an independent
register-liveness count like the acceptance check's.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernels._profile import profile_from_analysis
from kernels._sass import Control, analyze_function, cold_blocks, find_loops, parse_sass, pipe_of

FIXTURES = Path(__file__).parent / "fixtures" / "sass"


def _load(name: str) -> list:  # type: ignore[type-arg]
    funcs = parse_sass((FIXTURES / f"{name}.sass").read_text())
    assert len(funcs) == 1
    return next(iter(funcs.values()))


def _register_count(text: str) -> int:
    """Row loads in flight by a plain register rule over the text in order (an independent
    count: a 32-bit LDG result is outstanding until an instruction reads or overwrites it)."""
    out: set[str] = set()
    best = 0
    for line in text.splitlines():
        m = re.match(r"\s*/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z0-9_.]+)\s*([^;]*);", line)
        if not m:
            continue
        op, ops = m.group(3), [o.strip() for o in m.group(4).split(",")]
        srcs = " ".join(ops) if op.startswith("ST") else " ".join(ops[1:])
        out -= {r for r in out if re.search(rf"\b{r}\b", srcs)}
        out.discard(ops[0])
        if op.startswith("LDG") and ".64" not in op and ".128" not in op:
            out.add(ops[0])
            best = max(best, len(out))
    return best


def test_control_bits_decode_as_nvidia_encodes_them() -> None:
    # pytorch_ring_before fixture: `@!P4 LDG.E.64 R14, [R10.64+-0x18]` (0x2630) sets scoreboard 2;
    # `@!P4 IMAD R29, R15, ...` (0x2660), the first reader of R15, waits on it
    ld = Control.from_high_word(0x000EA2000C1E1B00)
    assert ld.write_barrier == 2 and ld.wait_mask == 0 and ld.stall == 1
    use = Control.from_high_word(0x004FE400078E02FF)
    assert use.write_barrier is None and use.wait_mask == 0b000100 and use.stall == 2
    ins = {i.address: i for i in _load("pytorch_ring_before_p2_sm80")}
    assert ins[0x2630].control == ld and ins[0x2660].control == use


def test_parse_reads_instructions_operands_and_control() -> None:
    ins = _load("pytorch_ring_p2_sm80")
    assert all(i.control is not None for i in ins)
    loads = [i for i in ins if i.is_global_load]
    assert loads and all(i.opcode.startswith("LDG") for i in loads)
    wide = next(i for i in loads if i.opcode == "LDG.E.64")
    assert wide.dest_registers()[1] == f"R{int(wide.dest_registers()[0][1:]) + 1}"
    assert any(r.startswith("R") for r in wide.source_registers())  # the address pair
    assert pipe_of("IMAD.WIDE.U32") == "integer" and pipe_of("FFMA") == "fp32" and pipe_of("LDG.E") == "memory"
    assert pipe_of("SHFL.IDX") == "shuffle" and pipe_of("BRA") == "control" and pipe_of("ULDC") == "uniform"


def test_the_old_ring_keeps_one_row_load_in_flight() -> None:
    """The register ring as it was (select at load, refill under a branch): one row load in
    flight at p = 2, although the source holds two rows ahead."""
    la = analyze_function(_load("pytorch_ring_before_p2_sm80"))
    assert la.row_loads_in_flight == 1
    assert la.row_loads_in_flight_registers == 1


@pytest.mark.parametrize(("name", "p"), [("pytorch_ring_p2_sm80", 2), ("pytorch_ring_p4_sm90", 4)])
def test_the_fixed_ring_keeps_p_or_more_row_loads_in_flight(name: str, p: int) -> None:
    ins = _load(name)
    la = analyze_function(ins)
    assert la.row_loads_in_flight >= p, la
    assert la.row_loads_in_flight_registers >= la.row_loads_in_flight
    assert la.row_loads == p + 1  # P + 1 slots: one pass of the loop uses every slot once
    assert la.index_loads == la.row_loads and la.other_loads == 0
    assert la.index_on_row_chain
    # the chain starts at an index load and ends at the accumulation
    assert la.chain[0][1] == "global" and la.chain[-1][0].startswith("FADD")
    assert any(op.startswith("LDG.E") and cls == "global" for op, cls in la.chain[1:])
    text = (FIXTURES / f"{name}.sass").read_text()
    assert _register_count(text) >= p


def test_micro24_combined_pairs_keep_two_row_loads_in_flight() -> None:
    """FACTS.md section 6: rows loaded in pairs, both used before the next pair: two in flight;
    at a cap of 42 the loop reloads spilled values (LDL)."""
    la = analyze_function(_load("micro24_cap42_sm80"))
    assert la.row_loads_in_flight == 2
    assert la.row_loads_in_flight_registers == 3  # the register rule overcounts: both loads share a scoreboard
    assert la.local_ops > 0
    prof = profile_from_analysis(la)
    assert 28 <= prof.total_instructions_per_lookup <= 34  # FACTS.md: about 32 per lookup (nvcc 13.0)
    assert prof.global_loads_per_lookup["row"] == 1.0
    assert prof.global_loads_per_lookup["index"] == 1.5  # pair loads plus the padding test's reread


def test_assert_calls_are_left_out_of_the_loop() -> None:
    ins = _load("micro24_cap42_sm80")
    cold = cold_blocks(ins)
    assert cold and any(ins[k].base == "CALL" for k in cold)
    assert not any(ins[k].is_global_load and ".64" not in ins[k].opcode for k in cold)  # no row load is cold


def test_tbe_reads_indices_once_per_32_rows_and_passes_them_by_shuffle() -> None:
    la = analyze_function(_load("tbe_sm80"))
    assert la.outer_index_loads == 1 and la.index_loads == 0
    assert not la.index_on_row_chain  # the index arrives by shuffle from the enclosing loop
    assert any(op.startswith("SHFL") for op, _cls in la.chain)
    assert la.chain[0][1] == "global" and la.chain[-1][0] == "FADD"
    prof = profile_from_analysis(la)
    assert prof.global_loads_per_lookup["index"] == pytest.approx(1 / 32)
    assert prof.global_loads_per_lookup["row"] == 1.0
    assert prof.instructions_per_lookup["shuffle"] > 0
    # as compiled, each row load is used before the next is issued (a guarded load per lane)
    assert la.row_loads_in_flight == 1


def test_loops_are_natural_loops_only() -> None:
    ins = _load("tbe_sm80")
    loops = find_loops(ins)
    assert loops
    for s, e in loops:
        assert s < e
        assert ins[e].base == "BRA"


def test_no_loop_with_rows_is_an_error() -> None:
    text = """\t\tFunction : k
        /*0000*/                   IMAD.MOV.U32 R1, RZ, RZ, c[0x0][0x28] ;
        /*0010*/                   EXIT ;
"""
    with pytest.raises(ValueError, match="no loop"):
        analyze_function(parse_sass(text)["k"])
