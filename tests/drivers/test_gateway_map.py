"""The gateway's Modbus register map: layout, encode -> decode round trips, partial writes."""

from __future__ import annotations

import struct
from itertools import pairwise
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.station_state import StationState
from drivers.errors import FrameError
from drivers.modbus.codec import RegisterKind, decode, make_spec
from drivers.modbus.gateway_map import (
    ASSEMBLY_CHARS,
    COIL_POINTS,
    DISCRETE_POINTS,
    INPUT_SIGNALS,
    POINTS,
    REGISTER_COUNT,
    REGISTER_POINTS,
    RegisterWrite,
    decode_registers,
    encode_bits,
    encode_registers,
    render_markdown,
    writes_for,
)

IR = RegisterKind.INPUT_REGISTER
HR = RegisterKind.HOLDING_REGISTER
DOC = Path(__file__).resolve().parents[2] / "docs" / "plc-gateway.md"


def values(state: StationState) -> dict[str, Any]:
    return msgspec.structs.asdict(state)


def f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


ascii_text = st.text(
    alphabet=st.characters(min_codepoint=1, max_codepoint=127), min_size=1,
    max_size=ASSEMBLY_CHARS,
)
# States every value of which the map can carry exactly (float32, uint16/32, ASCII).
states = st.builds(
    StationState,
    last_decision=st.sampled_from(["none", "pass", "fail", "uncertain"]),
    last_confidence=st.floats(0, 1, width=32),
    objects_found=st.integers(0, 0xFFFF),
    cycle_time_ms=st.floats(0, 1e9, width=32),
    pass_count=st.integers(0, 2**32 - 1),
    fail_count=st.integers(0, 2**32 - 1),
    uncertain_count=st.integers(0, 2**32 - 1),
    pass_rate_1h=st.floats(0, 100, width=32),
    last_inspection_us=st.none() | st.integers(1, 2**63 // 1000).map(lambda ms: ms * 1000),
    system_status=st.sampled_from(["unknown", "healthy", "degraded", "unhealthy"]),
    current_assembly=st.none() | ascii_text,
    current_step=st.none() | st.integers(0, 0xFFFE),
    step_state=st.sampled_from(["idle", "active", "complete", "paused", "interrupted",
                                "aborted"]),
    release_allowed=st.booleans(),
    heartbeat=st.integers(0, 0xFFFF),
)


@settings(deadline=None)  # wall-clock limits flake on a loaded 2-core box
@given(states)
def test_encode_then_decode_gives_the_state_back(state: StationState) -> None:
    words = encode_registers(values(state))
    assert len(words) == REGISTER_COUNT
    assert all(0 <= w <= 0xFFFF for w in words)
    assert StationState(**decode_registers(words)) == state


@settings(deadline=None)  # wall-clock limits flake on a loaded 2-core box
@given(states)
def test_discrete_inputs_and_flags_agree(state: StationState) -> None:
    bits = encode_bits(values(state))
    assert bits == [state.release_allowed, state.system_status == "healthy",
                    bool(state.heartbeat & 1)]
    flags = encode_registers(values(state))[22]
    assert [bool(flags >> i & 1) for i in range(3)] == bits
    assert flags >> 3 == 0


def test_known_layout_read_with_the_plain_codec() -> None:
    """What a PLC programmer reads at the documented addresses, decoded independently."""
    state = StationState(
        last_decision="fail", last_confidence=0.75, objects_found=3, cycle_time_ms=12.5,
        pass_count=70_000, fail_count=2, uncertain_count=1, pass_rate_1h=87.5,
        last_inspection_us=1_767_225_600_123_456, system_status="degraded",
        current_assembly="PUMP-7", current_step=4, step_state="paused",
        release_allowed=True, heartbeat=9,
    )
    w = encode_registers(values(state))

    def at(address: int, type_: str, **kw: Any) -> Any:
        spec = make_spec(IR, address, type_, **kw)
        return decode(spec, w[address : address + spec.count])

    assert w[0] == 2  # fail
    assert at(1, "float32") == 0.75
    assert w[3] == 3
    assert at(4, "float32") == 12.5
    assert at(6, "uint32") == 70_000 and w[6:8] == [1, 4464]  # high word first
    assert at(8, "uint32") == 2 and at(10, "uint32") == 1
    assert at(12, "float32") == 87.5
    ms = int.from_bytes(b"".join(x.to_bytes(2, "big") for x in w[14:18]), "big")
    assert ms == 1_767_225_600_123
    assert (w[18], w[19], w[20], w[21]) == (2, 4, 3, 9)  # degraded, step 4, paused, beat
    assert w[22] == 0b101  # release allowed, not healthy, life bit on (odd heartbeat)
    assert at(23, "string", count=16) == "PUMP-7"
    assert w[23] == ord("P") << 8 | ord("U")


def test_values_beyond_the_registers_saturate_wrap_or_sanitise() -> None:
    state = StationState(objects_found=70_000, pass_count=2**32 + 5, current_step=70_000,
                         current_assembly="Pümpe-" + "x" * 40)
    back = decode_registers(encode_registers(values(state)))
    assert back["objects_found"] == 0xFFFF
    assert back["pass_count"] == 5  # a counter wraps, as PLC counters do
    assert back["current_step"] == 0xFFFE  # never reads as "no step"
    assert back["current_assembly"] == ("P?mpe-" + "x" * 40)[:ASSEMBLY_CHARS]


def test_floats_are_float32_on_the_wire() -> None:
    back = decode_registers(encode_registers(values(StationState(last_confidence=0.1))))
    assert back["last_confidence"] == f32(0.1)


def test_unknown_codes_and_wrong_lengths_are_frame_errors() -> None:
    words = encode_registers(values(StationState()))
    with pytest.raises(FrameError, match="registers"):
        decode_registers(words[:-1])
    with pytest.raises(FrameError, match="LastDecision"):
        decode_registers([9, *words[1:]])


def test_writes_for_a_change_cover_only_its_registers_in_both_tables() -> None:
    state = StationState(heartbeat=3)
    writes = writes_for(values(state), {"heartbeat"})
    # Heartbeat (21) and Flags (22) are adjacent: one write per register table, whole.
    assert writes == [
        RegisterWrite(table=IR, address=21, values=[3, 0b100]),
        RegisterWrite(table=HR, address=21, values=[3, 0b100]),
        RegisterWrite(table=RegisterKind.DISCRETE_INPUT, address=0, values=[False, False, True]),
    ]
    assert writes_for(values(state), set()) == []


@settings(deadline=None)  # wall-clock limits flake on a loaded 2-core box
@given(states, st.sets(st.sampled_from(sorted(StationState.__struct_fields__))))
def test_applying_partial_writes_gives_the_same_image(state: StationState,
                                                      fields: set[str]) -> None:
    old = StationState()
    image = {IR: encode_registers(values(old)), HR: encode_registers(values(old)),
             RegisterKind.DISCRETE_INPUT: encode_bits(values(old))}
    changed = {f for f in fields if getattr(old, f) != getattr(state, f)}
    # Bring the new state in, field by field as the gateway would see the changes arrive.
    new = msgspec.structs.replace(old, **{f: getattr(state, f) for f in changed})
    for write in writes_for(values(new), changed):
        table: list[Any] = image[write.table]
        table[write.address : write.address + len(write.values)] = write.values
    assert image[IR] == encode_registers(values(new)) == image[HR]
    assert image[RegisterKind.DISCRETE_INPUT] == encode_bits(values(new))


def test_map_has_no_overlaps_and_fits_one_read() -> None:
    for table in RegisterKind:
        points = sorted((p for p in POINTS if p.table is table), key=lambda p: p.address)
        assert all(a.end <= b.address for a, b in pairwise(points))
    assert REGISTER_COUNT <= 125  # one FC 3/4 request reads the whole state
    assert [p.reference for p in REGISTER_POINTS[:2]] == ["30001", "30002-30003"]
    assert [p.reference for p in DISCRETE_POINTS] == ["10001", "10002", "10003"]
    assert [p.reference for p in COIL_POINTS] == ["00001", "00002", "00003"]
    assert INPUT_SIGNALS == {0: "part_present", 1: "request", 2: "reset"}


def test_the_document_shows_the_map_as_it_is() -> None:
    assert render_markdown() in DOC.read_text(encoding="utf-8")
