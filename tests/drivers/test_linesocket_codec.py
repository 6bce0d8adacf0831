"""TCP_SOCKET line codec: known lines, stream splitting, malformed input, typed values."""

from __future__ import annotations

import math
import struct
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.linesocket.codec import (
    MAX_LINE,
    SNAPSHOT_END,
    SNAPSHOT_REQUEST,
    InvalidValue,
    LineDecoder,
    Malformed,
    Message,
    Refused,
    SnapshotEnd,
    SnapshotRequest,
    Update,
    ValueType,
    encode_message,
    encode_refused,
    encode_update,
    encode_write,
    format_value,
    parse_value,
)

INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
FLOAT32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]


def decode_all(data: bytes, max_line: int = MAX_LINE) -> list[Message]:
    return LineDecoder(max_line).feed(data)


def feed_in_chunks(data: bytes, cuts: list[int], max_line: int = MAX_LINE) -> list[Message]:
    decoder = LineDecoder(max_line)
    messages: list[Message] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for start, end in pairwise(bounds):
        messages += decoder.feed(data[start:end])
    return messages


# --- strategies ----------------------------------------------------------------------------

names = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.",
    min_size=1,
    max_size=64,
)
value_texts = st.one_of(
    st.sampled_from(["0", "1", "true", "false", "TRUE", "False"]),
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(
        lambda f: format_value("float32", f)
    ),
    st.text(max_size=40).map(lambda s: format_value("string", s)),
)
reasons = st.text(max_size=60).filter(lambda r: "\n" not in r and "\r" not in r)
messages = st.one_of(
    st.builds(Update, name=names, text=value_texts),
    st.builds(Refused, name=names, reason=reasons),
    st.just(SnapshotRequest()),
    st.just(SnapshotEnd()),
)


# --- known lines ---------------------------------------------------------------------------


def test_each_line_kind_decodes() -> None:
    data = b'speed=1.5\nok=true\n!release interlock: guard open\n?\n.\nlabel="a=b\\n"\n!x\n'
    assert decode_all(data) == [
        Update(name="speed", text="1.5"),
        Update(name="ok", text="true"),
        Refused(name="release", reason="interlock: guard open"),
        SnapshotRequest(),
        SnapshotEnd(),
        Update(name="label", text='"a=b\\n"'),
        Refused(name="x", reason=""),
    ]


def test_crlf_and_blank_lines() -> None:
    assert decode_all(b"a=1\r\n\r\n\nb=2\n") == [
        Update(name="a", text="1"),
        Update(name="b", text="2"),
    ]


def test_partial_line_waits_for_its_lf() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"temp=2") == []
    assert decoder.buffered == 6
    assert decoder.feed(b"1.5\r") == []
    assert decoder.feed(b"\nx=") == [Update(name="temp", text="21.5")]
    assert decoder.feed(b"1\n") == [Update(name="x", text="1")]
    assert decoder.buffered == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"hello", "not a protocol line"),
        (b"a = 1", "invalid signal name"),
        (b"a=1 ", "invalid value"),
        (b"=1", "invalid signal name"),
        (b"bad-name=1", "invalid signal name"),
        (b"x" * 65 + b"=1", "invalid signal name"),
        (b"a=", "invalid value"),
        (b"a=nan", "invalid value"),
        (b"a=inf", "invalid value"),
        (b"a=-Infinity", "invalid value"),
        (b"a=1e999", "number out of range"),
        (b"a=0x10", "invalid value"),
        (b"a=1_000", "invalid value"),
        (b"a=abc", "invalid value"),
        (b'a="open', "string does not end with a double quote"),
        (b'a="x" ', "string does not end with a double quote"),
        (b'a="tab\there"', "invalid string"),
        (b'a="\\ud800"', "invalid string"),
        (b"a=\xd9\xa3", "invalid value"),  # an Arabic-Indic digit is not a decimal digit
        (b"a=\xff", "invalid UTF-8"),
        (b"! reason", "invalid signal name in refusal"),
        (b"??", "not a protocol line"),
    ],
)
def test_malformed_lines_say_why_and_quote_the_line(line: bytes, reason: str) -> None:
    [message] = decode_all(line + b"\n")
    assert isinstance(message, Malformed)
    assert message.reason.startswith(reason)
    assert message.line == line.decode("utf-8", "backslashreplace")


def test_malformed_line_does_not_disturb_its_neighbours() -> None:
    out = decode_all(b"a=1\n\xfe\xfe\nb=2\n")
    assert out[0] == Update(name="a", text="1")
    assert isinstance(out[1], Malformed)
    assert out[1].line == "\\xfe\\xfe"
    assert out[2] == Update(name="b", text="2")


def test_malformed_excerpt_is_truncated() -> None:
    [message] = decode_all(b"junk" * 200 + b"\n")
    assert isinstance(message, Malformed)
    assert message.line.startswith("junkjunk")
    assert message.line.endswith("...")
    assert len(message.line) <= 90


def test_line_of_max_length_is_accepted_and_one_more_byte_is_not() -> None:
    text = '"' + "x" * (MAX_LINE - 4) + '"'
    line = b"s=" + text.encode()
    assert len(line) == MAX_LINE
    assert decode_all(line + b"\r\n") == [Update(name="s", text=text)]
    # Split right before the LF: the CR alone must not make the line look too long yet.
    assert feed_in_chunks(line + b"\r\n", [MAX_LINE + 1]) == [Update(name="s", text=text)]
    [too_long] = decode_all(b"s=" + b"1" * (MAX_LINE - 1) + b"\n")
    assert isinstance(too_long, Malformed)
    assert too_long.reason == f"line longer than {MAX_LINE} bytes"


def test_overlong_line_is_reported_once_and_skipped_to_the_next_lf() -> None:
    decoder = LineDecoder(max_line=16)
    out: list[Message] = []
    for _ in range(1000):  # a peer that streams without ever sending LF
        out += decoder.feed(b"y" * 100)
        assert decoder.buffered <= 17
    assert len(out) == 1
    assert isinstance(out[0], Malformed)
    assert decoder.feed(b"still the long line\nok=1\n") == [Update(name="ok", text="1")]


def test_encoders() -> None:
    assert SNAPSHOT_REQUEST == b"?\n"
    assert SNAPSHOT_END == b".\n"
    assert encode_update("a.b_1", "-3") == b"a.b_1=-3\n"
    assert encode_refused("out", "not writable") == b"!out not writable\n"
    assert encode_refused("out", "") == b"!out\n"
    assert encode_write("msg", "string", 'say "hi"\n') == b'msg="say \\"hi\\"\\n"\n'
    assert encode_write("on", "bool", True) == b"on=1\n"
    assert encode_write("t", "float32", 0.1) == b"t=0.1\n"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: encode_update("bad name", "1"), "invalid signal name"),
        (lambda: encode_update("a", "nan"), "invalid value"),
        (lambda: encode_update("a", "x\ny"), "invalid value"),
        (lambda: encode_refused("a", "two\nlines"), "CR or LF"),
        (lambda: encode_write("a", "string", "x" * MAX_LINE), "1024-byte limit"),
        (lambda: encode_write("a", "int16", 40000), "out of int16 range"),
        (lambda: encode_message(Malformed(reason="x", line="y")), "cannot be encoded"),
    ],
)
def test_encoders_refuse_what_a_plc_could_not_read(call: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()  # type: ignore[operator]


# --- stream properties ---------------------------------------------------------------------


@given(
    st.lists(st.tuples(messages, st.booleans()), max_size=20),
    st.lists(st.integers(min_value=0), max_size=30),
)
def test_valid_messages_survive_any_split(
    items: list[tuple[Message, bool]], cuts: list[int]
) -> None:
    data = b"".join(
        encode_message(message)[:-1] + (b"\r\n" if crlf else b"\n") for message, crlf in items
    )
    assert feed_in_chunks(data, cuts) == [message for message, _ in items]


@given(
    st.binary(max_size=400),
    st.lists(st.integers(min_value=0), max_size=30),
    st.sampled_from([4, 16, MAX_LINE]),
)
def test_arbitrary_bytes_never_raise_and_decode_the_same_however_split(
    data: bytes, cuts: list[int], max_line: int
) -> None:
    whole = decode_all(data, max_line)
    assert feed_in_chunks(data, cuts, max_line) == whole
    for message in whole:
        if isinstance(message, Update):
            # Whatever the decoder lets through is a value some Takt type can hold.
            if message.text.startswith('"'):
                parse_value("string", message.text)
            elif message.text.lower() not in ("true", "false"):
                parse_value("float64", message.text)


@given(st.binary(max_size=3000), messages)
def test_decoder_recovers_after_garbage(garbage: bytes, message: Message) -> None:
    decoder = LineDecoder()
    decoder.feed(garbage)
    assert decoder.feed(b"\n" + encode_message(message))[-1] == message


# --- typed values --------------------------------------------------------------------------


@given(st.booleans())
def test_bool_round_trip(value: bool) -> None:
    assert parse_value("bool", format_value("bool", value)) is value


@pytest.mark.parametrize(
    ("text", "value"), [("0", False), ("1", True), ("true", True), ("FALSE", False)]
)
def test_bool_spellings(text: str, value: bool) -> None:
    assert parse_value("bool", text) is value


@pytest.mark.parametrize("type_name", list(INT_RANGES))
@given(data=st.data())
def test_int_round_trip(type_name: str, data: st.DataObject) -> None:
    low, high = INT_RANGES[type_name]
    value = data.draw(st.integers(low, high))
    text = format_value(type_name, value)
    assert parse_value(type_name, text) == value
    assert decode_all(f"x={text}\n".encode()) == [Update(name="x", text=text)]


@pytest.mark.parametrize("type_name", list(INT_RANGES))
def test_int_range_limits(type_name: str) -> None:
    low, high = INT_RANGES[type_name]
    assert parse_value(type_name, str(low)) == low
    assert parse_value(type_name, f"+{high}") == high
    for outside in (low - 1, high + 1):
        with pytest.raises(InvalidValue, match=f"out of {type_name} range"):
            parse_value(type_name, str(outside))
        with pytest.raises(InvalidValue, match=f"out of {type_name} range"):
            format_value(type_name, outside)


@given(st.floats(allow_nan=False, allow_infinity=False, width=32))
def test_float32_round_trip_is_exact_and_short(value: float) -> None:
    text = format_value("float32", value)
    assert parse_value("float32", text) == value
    assert len(text) <= 15


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float64_round_trip(value: float) -> None:
    assert parse_value("float64", format_value("float64", value)) == value


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float32_rounds_a_float64_to_single_precision(value: float) -> None:
    if abs(value) > FLOAT32_MAX * (1 + 2**-25):
        with pytest.raises(InvalidValue, match="float32 range"):
            format_value("float32", value)
        return
    single = struct.unpack("<f", struct.pack("<f", value))[0]
    assert parse_value("float32", format_value("float32", value)) == single
    assert parse_value("float32", repr(value)) == single


@given(st.text(max_size=200))
def test_string_round_trip(value: str) -> None:
    text = format_value("string", value)
    assert "\n" not in text
    assert parse_value("string", text) == value
    line = encode_write("s", "string", value)
    assert decode_all(line) == [Update(name="s", text=text)]


@pytest.mark.parametrize(
    ("type_name", "text", "match"),
    [
        ("bool", "2", "not a bool"),
        ("bool", "yes", "not a bool"),
        ("int16", "1.0", "not a decimal integer"),
        ("int32", "1e3", "not a decimal integer"),
        ("uint16", "-1", "out of uint16 range"),
        ("float32", "1e39", "out of float32 range"),
        ("float64", "1e999", "must be finite"),
        ("float64", "nan", "not a number"),
        ("float64", "inf", "not a number"),
        ("float64", '"1.5"', "not a number"),
        ("string", "abc", "needs double quotes"),
        ("string", '"abc', "does not end with a double quote"),
        ("string", '"a" ', "does not end with a double quote"),
        ("float16", "1", "unknown value type"),
    ],
)
def test_parse_value_errors_are_clear(type_name: str, text: str, match: str) -> None:
    with pytest.raises(InvalidValue, match=match):
        parse_value(type_name, text)


@pytest.mark.parametrize(
    ("type_name", "value", "match"),
    [
        ("bool", 1, "needs True or False"),
        ("int16", 1.5, "needs an int"),
        ("int16", True, "needs a number"),
        ("uint32", "5", "needs a number"),
        ("float32", math.nan, "must be finite"),
        ("float64", math.inf, "must be finite"),
        ("float64", 10**400, "out of float64 range"),
        ("float32", 1e39, "out of float32 range"),
        ("string", 5, "needs a str"),
        ("string", "\ud800", "not encodable"),
    ],
)
def test_format_value_errors_are_clear(type_name: str, value: object, match: str) -> None:
    with pytest.raises(InvalidValue, match=match):
        format_value(type_name, value)  # type: ignore[arg-type]


def test_every_value_type_has_a_round_trip() -> None:
    samples = {
        ValueType.BOOL: False,
        ValueType.INT16: -12,
        ValueType.UINT16: 65535,
        ValueType.INT32: -(2**31),
        ValueType.UINT32: 2**32 - 1,
        ValueType.FLOAT32: 1.5,
        ValueType.FLOAT64: -2.5e-300,
        ValueType.STRING: 'é"=\n',
    }
    assert set(samples) == set(ValueType)
    for type_name, value in samples.items():
        [update] = decode_all(encode_write("v", type_name, value))
        assert isinstance(update, Update)
        assert parse_value(type_name, update.text) == value
