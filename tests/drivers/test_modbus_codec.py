"""Modbus register-map codec: known vectors, round trips and read planning."""

from __future__ import annotations

import math
from collections import defaultdict
from itertools import pairwise

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError
from drivers.modbus.codec import (
    MAX_READ_BITS,
    MAX_READ_REGISTERS,
    ByteOrder,
    DataType,
    EncodeError,
    ReadBlock,
    RegisterKind,
    RegisterSpec,
    WordOrder,
    decode,
    encode,
    encode_bit,
    extract,
    make_spec,
    plan_reads,
    register_count,
)

HR = RegisterKind.HOLDING_REGISTER
REGISTER_KINDS = [RegisterKind.HOLDING_REGISTER, RegisterKind.INPUT_REGISTER]
BIT_KINDS = [RegisterKind.COIL, RegisterKind.DISCRETE_INPUT]
INT_RANGES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
}

scales = st.one_of(
    st.sampled_from([1.0, 0.1, 0.01, 0.5, 2.0, 10.0, -1.0]),
    st.floats(min_value=1e-3, max_value=1e3),
)
orders = st.tuples(st.sampled_from(list(WordOrder)), st.sampled_from(list(ByteOrder)))


def spec(type_: DataType, *, kind: RegisterKind = HR, **kw: object) -> RegisterSpec:
    return make_spec(kind, 10, type_, **kw)  # type: ignore[arg-type]


# --- known vectors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "word_order", "byte_order", "value", "words"),
    [
        (DataType.FLOAT32, "big", "big", 1.0, [0x3F80, 0x0000]),
        (DataType.FLOAT32, "little", "big", 1.0, [0x0000, 0x3F80]),
        (DataType.FLOAT32, "big", "little", 1.0, [0x803F, 0x0000]),
        (DataType.FLOAT32, "big", "big", -2.5, [0xC020, 0x0000]),
        (DataType.INT32, "little", "big", -2, [0xFFFE, 0xFFFF]),
        (DataType.INT32, "big", "big", -2, [0xFFFF, 0xFFFE]),
        (DataType.UINT32, "big", "big", 0x12345678, [0x1234, 0x5678]),
        (DataType.UINT32, "little", "little", 0x12345678, [0x7856, 0x3412]),
        (DataType.INT16, "big", "big", -1, [0xFFFF]),
        (DataType.INT16, "big", "little", 0x0102, [0x0201]),
        (DataType.UINT16, "little", "big", 65535, [0xFFFF]),
    ],
)
def test_known_vectors(
    type_: DataType, word_order: str, byte_order: str, value: float, words: list[int]
) -> None:
    s = spec(type_, word_order=word_order, byte_order=byte_order)
    assert encode(s, value) == words
    assert decode(s, words) == value


def test_string_vectors_pad_with_nul_and_strip_it() -> None:
    s = spec(DataType.STRING, count=3)
    assert encode(s, "ABC") == [0x4142, 0x4300, 0x0000]
    assert decode(s, [0x4142, 0x4300, 0x0000]) == "ABC"
    swapped = spec(DataType.STRING, count=2, byte_order="little")
    assert encode(swapped, "ABC") == [0x4241, 0x0043]
    # Word order is meaningless for text: it must not reorder the characters.
    assert encode(spec(DataType.STRING, count=2, word_order="little"), "ABCD") == [0x4142, 0x4344]


def test_scale_turns_raw_counts_into_engineering_units() -> None:
    tenth = spec(DataType.INT16, scale=0.1)
    assert encode(tenth, 23.5) == [235]
    assert decode(tenth, [0xFFFF]) == pytest.approx(-0.1)
    assert isinstance(decode(spec(DataType.INT16), [5]), int)
    assert isinstance(decode(spec(DataType.UINT16, scale=2.0), [5]), float)


def test_bool_on_registers_means_nonzero() -> None:
    s = spec(DataType.BOOL)
    assert decode(s, [0]) is False
    assert decode(s, [0x8000]) is True
    assert encode(s, True) == [1]
    assert encode(s, 0) == [0]


def test_bits_decode_and_encode_single_bool() -> None:
    for kind in BIT_KINDS:
        s = make_spec(kind, 3, "bool")
        assert register_count(s) == 1
        assert decode(s, [True]) is True
        assert decode(s, [False]) is False
        assert encode(s, True) == [1]
        assert encode_bit(s, 1) is True
        with pytest.raises(EncodeError):
            encode_bit(s, 2)
        with pytest.raises(FrameError):
            decode(s, [7])


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "coil", "address": 0, "type": "int16"}, "only bool"),
        ({"kind": "discrete_input", "address": 0, "type": "string", "count": 2}, "only bool"),
        ({"kind": "register", "address": 0, "type": "int16"}, "kind 'register'"),
        ({"kind": "holding_register", "address": 0, "type": "int64"}, "type 'int64'"),
        ({"kind": "holding_register", "address": 0, "type": "string"}, "string needs"),
        ({"kind": "holding_register", "address": 0, "type": "string", "count": 126}, "string"),
        ({"kind": "holding_register", "address": -1, "type": "int16"}, "0..65535"),
        ({"kind": "holding_register", "address": 65535, "type": "float32"}, "0..65535"),
        ({"kind": "holding_register", "address": 0, "type": "int32", "count": 3}, "takes 2"),
        ({"kind": "holding_register", "address": 0, "type": "int16", "scale": 0}, "scale"),
        ({"kind": "holding_register", "address": 0, "type": "bool", "scale": 2}, "scale"),
        ({"kind": "input_register", "address": 0, "type": "float32", "word_order": "mid"}, "word"),
    ],
)
def test_make_spec_rejects_impossible_combinations(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(**kwargs)


def test_spec_converts_from_a_config_table_and_derives_count() -> None:
    table = {"kind": "input_register", "address": 7, "type": "float32", "word_order": "little"}
    s = msgspec.convert(table, RegisterSpec)
    assert s == make_spec("input_register", 7, "float32", word_order="little")
    assert register_count(s) == 2
    with pytest.raises(msgspec.ValidationError, match="only bool"):
        msgspec.convert({"kind": "coil", "address": 0, "type": "float32"}, RegisterSpec)


def test_decode_rejects_wrong_length_and_non_16_bit_words() -> None:
    s = spec(DataType.INT32)
    with pytest.raises(FrameError):
        decode(s, [1])
    with pytest.raises(FrameError):
        decode(s, [1, 0x10000])
    with pytest.raises(FrameError):
        decode(spec(DataType.STRING, count=1), [0x41C3])


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        (DataType.INT16, 40000),
        (DataType.UINT16, -1),
        (DataType.UINT32, 2**32),
        (DataType.INT32, math.nan),
        (DataType.INT16, math.inf),
        (DataType.INT16, "12"),
        (DataType.INT16, True),
        (DataType.FLOAT32, 1e39),
        (DataType.FLOAT32, 10**400),
    ],
)
def test_encode_rejects_values_the_type_cannot_hold(type_: DataType, value: object) -> None:
    with pytest.raises(EncodeError):
        encode(spec(type_), value)  # type: ignore[arg-type]


def test_encode_rejects_scaled_overflow() -> None:
    with pytest.raises(EncodeError):
        encode(spec(DataType.INT16, scale=0.001), 40.0)
    with pytest.raises(EncodeError):
        encode(spec(DataType.FLOAT32, scale=1e-3), 1e308)


@pytest.mark.parametrize("text", ["Grüße", "ABCDE", "A\x00B", 5])
def test_encode_rejects_bad_strings(text: object) -> None:
    with pytest.raises(EncodeError):
        encode(spec(DataType.STRING, count=2), text)  # type: ignore[arg-type]


# --- round trips ------------------------------------------------------------------------------


@st.composite
def int_cases(draw: st.DrawFn) -> tuple[RegisterSpec, int, float]:
    type_ = draw(st.sampled_from(list(INT_RANGES)))
    word_order, byte_order = draw(orders)
    scale = draw(scales)
    kind = draw(st.sampled_from(REGISTER_KINDS))
    s = make_spec(kind, 0, type_, word_order=word_order, byte_order=byte_order, scale=scale)
    raw = draw(st.integers(*INT_RANGES[type_]))
    return s, raw, raw * scale if scale != 1.0 else raw


@given(int_cases())
def test_integer_round_trip(case: tuple[RegisterSpec, int, float]) -> None:
    s, raw, value = case
    words = encode(s, value)
    assert len(words) == register_count(s)
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode(s, words) == value
    assert encode(s, decode(s, words)) == words
    if s.scale == 1.0:
        assert decode(s, words) == raw


@given(
    st.floats(width=32, allow_nan=False),
    orders,
    scales,
    st.sampled_from(REGISTER_KINDS),
)
def test_float32_round_trip(
    raw: float, order: tuple[WordOrder, ByteOrder], scale: float, kind: RegisterKind
) -> None:
    s = make_spec(kind, 0, "float32", word_order=order[0], byte_order=order[1], scale=scale)
    value = raw * scale
    decoded = decode(s, encode(s, value))
    assert isinstance(decoded, float)
    if scale == 1.0:
        assert decoded == value
    else:
        # One float32 rounding of value/scale: relative error <= 2**-24, plus subnormals.
        assert math.isclose(decoded, value, rel_tol=1e-6, abs_tol=1e-38 * abs(scale))


@given(orders, st.sampled_from([math.nan, math.inf, -math.inf]))
def test_float32_nan_and_inf_pass_through(order: tuple[WordOrder, ByteOrder], x: float) -> None:
    s = make_spec(HR, 0, "float32", word_order=order[0], byte_order=order[1])
    decoded = decode(s, encode(s, x))
    assert (math.isnan(decoded) and math.isnan(x)) or decoded == x


@given(st.data())
def test_string_round_trip(data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 20))
    byte_order = data.draw(st.sampled_from(list(ByteOrder)))
    text = data.draw(st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=count * 2))
    s = make_spec(HR, 0, "string", count=count, byte_order=byte_order)
    words = encode(s, text)
    assert len(words) == count
    assert decode(s, words) == text


@given(st.data())
def test_words_to_value_to_words_is_identity(data: st.DataObject) -> None:
    type_ = data.draw(st.sampled_from([*INT_RANGES, DataType.FLOAT32]))
    word_order, byte_order = data.draw(orders)
    s = make_spec(HR, 0, type_, word_order=word_order, byte_order=byte_order)
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=s.count, max_size=s.count))
    value = decode(s, words)
    if isinstance(value, float) and math.isnan(value):
        return  # NaN payloads are not promised to survive
    assert encode(s, value) == words


all_specs = st.one_of(
    st.builds(
        make_spec,
        st.sampled_from(BIT_KINDS),
        st.integers(0, 65535),
        st.just("bool"),
    ),
    st.builds(
        lambda kind, address, type_, wo, bo, scale: make_spec(
            kind, address, type_, word_order=wo, byte_order=bo, scale=scale
        ),
        st.sampled_from(REGISTER_KINDS),
        st.integers(0, 65534),
        st.sampled_from([*INT_RANGES, DataType.FLOAT32]),
        st.sampled_from(list(WordOrder)),
        st.sampled_from(list(ByteOrder)),
        scales,
    ),
    st.builds(
        lambda kind, address, count, bo: make_spec(
            kind, address, "string", count=count, byte_order=bo
        ),
        st.sampled_from(REGISTER_KINDS),
        st.integers(0, 65000),
        st.integers(1, 40),
        st.sampled_from(list(ByteOrder)),
    ),
    st.builds(make_spec, st.sampled_from(REGISTER_KINDS), st.integers(0, 65535), st.just("bool")),
)


@given(all_specs, st.data())
def test_decode_raises_only_frame_error(s: RegisterSpec, data: st.DataObject) -> None:
    words = data.draw(st.lists(st.integers(-(2**17), 2**17), min_size=s.count, max_size=s.count))
    try:
        value = decode(s, words)
    except FrameError:
        return
    assert all(0 <= w <= 0xFFFF for w in words)
    expected = {DataType.BOOL: bool, DataType.STRING: str, DataType.FLOAT32: float}
    assert isinstance(value, expected.get(s.type, int if s.scale == 1.0 else float))


@given(all_specs, st.data())
def test_valid_numeric_words_always_decode(s: RegisterSpec, data: st.DataObject) -> None:
    hi = 1 if s.kind in BIT_KINDS else 0xFFFF
    words = data.draw(st.lists(st.integers(0, hi), min_size=s.count, max_size=s.count))
    if s.type is DataType.STRING:
        return
    decode(s, words)


# --- read planning -----------------------------------------------------------------------------

# Addresses bunch up in a small window so that merging, gaps and limits all get exercised.
planned_specs = st.lists(
    st.one_of(
        st.builds(make_spec, st.sampled_from(BIT_KINDS), st.integers(0, 4500), st.just("bool")),
        st.builds(
            make_spec,
            st.sampled_from(REGISTER_KINDS),
            st.integers(0, 400),
            st.sampled_from(["int16", "uint32", "float32", "bool"]),
        ),
        st.builds(
            lambda kind, address, count: make_spec(kind, address, "string", count=count),
            st.sampled_from(REGISTER_KINDS),
            st.one_of(st.integers(0, 400), st.integers(65400, 65535 - 125)),
            st.integers(1, MAX_READ_REGISTERS),
        ),
    ),
    max_size=60,
)


@given(planned_specs, st.integers(0, 20))
def test_plan_reads_covers_every_spec_within_limits(
    specs: list[RegisterSpec], max_gap: int
) -> None:
    blocks = plan_reads(specs, max_gap=max_gap)
    by_kind: dict[RegisterKind, list[ReadBlock]] = defaultdict(list)
    for block in blocks:
        limit = MAX_READ_BITS if block.kind in BIT_KINDS else MAX_READ_REGISTERS
        assert 1 <= block.count <= limit
        assert block.address >= 0 and block.end <= 65536
        by_kind[block.kind].append(block)
    for s in specs:
        # Every value is read whole by one request (overlapping tags may be read twice).
        assert any(b.address <= s.address and s.end <= b.end for b in by_kind[s.kind])
    for kind, kind_blocks in by_kind.items():
        kind_specs = [s for s in specs if s.kind is kind]
        for prev, nxt in pairwise(kind_blocks):
            assert prev.address < nxt.address
            # Splitting was necessary: the gap is too wide or one read could not hold both.
            assert nxt.address - prev.end > max_gap or nxt.end - prev.address > (
                MAX_READ_BITS if kind in BIT_KINDS else MAX_READ_REGISTERS
            )
        for block in kind_blocks:
            inside = [s for s in kind_specs if block.address <= s.address and s.end <= block.end]
            assert min(s.address for s in inside) == block.address
            assert max(s.end for s in inside) == block.end
            covered = set()
            for s in inside:
                covered.update(range(s.address, s.end))
            hole = 0
            for address in range(block.address, block.end):
                hole = 0 if address in covered else hole + 1
                assert hole <= max_gap


@given(planned_specs, st.integers(0, 20), st.randoms(use_true_random=False))
def test_extract_reads_each_spec_out_of_its_block(
    specs: list[RegisterSpec], max_gap: int, rnd: object
) -> None:
    bank: dict[tuple[RegisterKind, int], int] = {}

    def value_at(kind: RegisterKind, address: int) -> int:
        hi = 1 if kind in BIT_KINDS else 0x7F7F  # printable-ish, never NaN-heavy
        return bank.setdefault((kind, address), rnd.randint(0, hi))  # type: ignore[attr-defined]

    blocks = plan_reads(specs, max_gap=max_gap)
    for s in specs:
        block = next(
            b for b in blocks if b.kind is s.kind and b.address <= s.address and s.end <= b.end
        )
        values = [value_at(block.kind, a) for a in range(block.address, block.end)]
        direct = [value_at(s.kind, a) for a in range(s.address, s.end)]
        try:
            expected = decode(s, direct)
        except FrameError:
            with pytest.raises(FrameError):
                extract(s, block, values)
            continue
        got = extract(s, block, values)
        assert got == expected or (isinstance(got, float) and math.isnan(got))


def test_plan_reads_known_layout() -> None:
    specs = [
        make_spec("holding_register", 0, "float32"),
        make_spec("holding_register", 10, "int16"),  # gap 8 from 2: merged
        make_spec("holding_register", 20, "int16"),  # gap 9 from 11: new block
        make_spec("coil", 5, "bool"),
        make_spec("coil", 0, "bool"),
        make_spec("input_register", 0, "string", count=100),
        make_spec("input_register", 100, "string", count=30),  # would exceed 125
    ]
    assert plan_reads(specs) == [
        ReadBlock(kind=RegisterKind.COIL, address=0, count=6),
        ReadBlock(kind=HR, address=0, count=11),
        ReadBlock(kind=HR, address=20, count=1),
        ReadBlock(kind=RegisterKind.INPUT_REGISTER, address=0, count=100),
        ReadBlock(kind=RegisterKind.INPUT_REGISTER, address=100, count=30),
    ]
    assert plan_reads([]) == []
    with pytest.raises(ValueError, match="max_gap"):
        plan_reads(specs, max_gap=-1)


def test_extract_checks_block_membership_and_length() -> None:
    s = make_spec("holding_register", 4, "int32")
    block = ReadBlock(kind=HR, address=0, count=6)
    assert extract(s, block, [0, 0, 0, 0, 0xFFFF, 0xFFFE]) == -2
    with pytest.raises(FrameError):
        extract(s, block, [0, 0, 0, 0, 0xFFFF])
    with pytest.raises(ValueError, match="not inside"):
        extract(s, ReadBlock(kind=HR, address=0, count=5), [0] * 5)
    with pytest.raises(ValueError, match="not inside"):
        extract(s, ReadBlock(kind=RegisterKind.INPUT_REGISTER, address=0, count=6), [0] * 6)
