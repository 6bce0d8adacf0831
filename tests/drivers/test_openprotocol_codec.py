"""Open Protocol codec: frame header, stream splitting and resync, typed MIDs, torque units."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from itertools import pairwise

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError
from drivers.openprotocol.codec import (
    Frame,
    FrameDecoder,
    Malformed,
    StreamEvent,
    decode_frame,
    encode_frame,
)
from drivers.openprotocol.mids import (
    BatchStatus,
    CommandAccepted,
    CommandError,
    CommunicationStart,
    CommunicationStartAck,
    CommunicationStop,
    DisableTool,
    EnableTool,
    ErrorCode,
    KeepAlive,
    LimitStatus,
    Message,
    Mid,
    OtherMid,
    ResultAck,
    ResultSubscribe,
    ResultUnsubscribe,
    SelectParameterSet,
    SetBatchSize,
    TighteningResult,
    batch_size_command,
    cnm_from_nm,
    decode_message,
    encode_message,
    error_name,
    nm,
    nm_float,
)


def feed_in_chunks(data: bytes, cuts: list[int]) -> tuple[list[StreamEvent], FrameDecoder]:
    decoder = FrameDecoder()
    events: list[StreamEvent] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for start, end in pairwise(bounds):
        events += decoder.feed(data[start:end])
    return events, decoder


def frames_of(events: list[StreamEvent]) -> list[Frame]:
    return [event for event in events if isinstance(event, Frame)]


def roundtrip(message: Message) -> Message:
    return decode_message(decode_frame(encode_message(message)))


# --- golden frames, written by hand from the protocol layout --------------------------------

KEEP_ALIVE_SPACES = b"00209999            \x00"
RESULT_DATA = b"".join(
    (
        b"010001",
        b"0201",
        b"03" + b"Line 3 PF6000".ljust(25),
        b"04" + b"VIN-0042".ljust(25),
        b"0500",
        b"06001",
        b"070004",
        b"080002",
        b"091",
        b"101",
        b"111",
        b"12000900",
        b"13001100",
        b"14001000",
        b"15001012",
        b"1600030",
        b"1700090",
        b"1800060",
        b"1900055",
        b"202024-05-01:12:34:56",
        b"212024-01-02:03:04:05",
        b"220",
        b"230000004711",
    )
)
GOLDEN_RESULT = b"02310061001         " + RESULT_DATA + b"\x00"
EXPECTED_RESULT = TighteningResult(
    cell_id=1,
    channel_id=1,
    controller_name="Line 3 PF6000",
    vin="VIN-0042",
    job_id=0,
    pset=1,
    batch_size=4,
    batch_counter=2,
    tightening_ok=True,
    torque_status=LimitStatus.OK,
    angle_status=LimitStatus.OK,
    torque_min_cnm=900,
    torque_max_cnm=1100,
    torque_target_cnm=1000,
    torque_cnm=1012,
    angle_min=30,
    angle_max=90,
    angle_target=60,
    angle=55,
    timestamp=datetime(2024, 5, 1, 12, 34, 56),
    pset_changed_at=datetime(2024, 1, 2, 3, 4, 5),
    batch_status=BatchStatus.NOK,
    tightening_id=4711,
)


def test_header_of_spaces_means_defaults() -> None:
    assert decode_frame(KEEP_ALIVE_SPACES) == Frame(mid=9999)


def test_header_fields_decode() -> None:
    frame = decode_frame(b"00260004000101020391000197\x00")
    assert frame == Frame(
        mid=4,
        revision=1,  # "000" means revision 1
        no_ack=True,
        station_id=1,
        spindle_id=2,
        sequence_number=3,
        message_parts=9,
        message_part_number=1,
        data=b"000197",
    )


def test_encode_pads_with_zeros_and_spaces() -> None:
    assert encode_frame(Frame(mid=1, revision=3)) == b"002000010030        \x00"
    assert encode_frame(Frame(mid=18, data=b"005")) == b"002300180010        005\x00"


def test_golden_result_decodes_field_by_field() -> None:
    assert len(RESULT_DATA) == 211
    result = decode_message(decode_frame(GOLDEN_RESULT))
    assert result == EXPECTED_RESULT
    assert isinstance(result, TighteningResult)
    assert result.torque_nm == Decimal("10.12")
    assert (result.torque_min_nm, result.torque_max_nm) == (Decimal("9"), Decimal("11"))
    assert result.torque_target_nm == Decimal("10.00")


def test_result_encodes_to_the_golden_data() -> None:
    assert encode_message(EXPECTED_RESULT)[20:] == RESULT_DATA + b"\x00"


def test_start_ack_revisions() -> None:
    rev1 = b"005700020010        010001020103" + b"PF6000".ljust(25) + b"\x00"
    assert decode_message(decode_frame(rev1)) == CommunicationStartAck(
        revision=1, cell_id=1, channel_id=1, controller_name="PF6000"
    )
    data = b"010042020303" + b"PF6000".ljust(25) + b"04ACT05" + b"2.8.0".ljust(19)
    data += b"06" + b"C 1.2".ljust(19) + b"07" + b"T 3.4".ljust(19)
    frame = Frame(mid=2, revision=3, data=data)
    assert decode_message(frame) == CommunicationStartAck(
        revision=3,
        cell_id=42,
        channel_id=3,
        controller_name="PF6000",
        supplier_code="ACT",
        open_protocol_version="2.8.0",
        controller_software_version="C 1.2",
        tool_software_version="T 3.4",
    )


def test_command_error_names_its_code() -> None:
    message = decode_message(decode_frame(b"002600040010        001897\x00"))
    assert message == CommandError(mid=18, error=ErrorCode.REVISION_UNSUPPORTED)
    assert isinstance(message, CommandError)
    assert message.error_name == "MID revision unsupported"
    assert error_name(2) == "parameter set number not present"
    assert error_name(96) == "client already connected"
    assert error_name(99) == "unknown MID"
    assert error_name(55) == "unknown error 55"


def test_set_batch_size_revisions_on_the_wire() -> None:
    # As other implementations write them: no parameter ids; revision 2 widens the size.
    assert decode_message(decode_frame(b"00250019            77750\x00")) == SetBatchSize(
        pset=777, batch_size=50
    )
    assert decode_message(decode_frame(b"00270019002         7770050\x00")) == SetBatchSize(
        pset=777, batch_size=50, revision=2
    )
    assert encode_message(SetBatchSize(pset=1, batch_size=4)) == b"002500190010        00104\x00"
    rev2 = SetBatchSize(pset=12, batch_size=1500, revision=2)
    assert encode_message(rev2) == b"002700190020        0121500\x00"


def test_batch_size_command_takes_the_lowest_revision_that_fits() -> None:
    assert batch_size_command(3, 0) == SetBatchSize(pset=3, batch_size=0, revision=1)
    assert batch_size_command(3, 99).revision == 1
    assert batch_size_command(3, 100) == SetBatchSize(pset=3, batch_size=100, revision=2)
    assert batch_size_command(3, 9999).revision == 2
    for size in (10_000, -1, True):
        with pytest.raises(ValueError, match="batch size"):
            batch_size_command(3, size)


@pytest.mark.parametrize(
    ("data", "revision", "match"),
    [
        (b"0012", 1, "4 data bytes, expected 5"),
        (b"0010002", 1, "7 data bytes, expected 5"),
        (b"00102", 2, "5 data bytes, expected 7"),
        (b"001X2", 1, "batch size 'X2' is not a number"),
        (b" 0102", 1, "pset ' 01' is not a number"),
        (b"0010002", 3, "revision 3 is not supported"),
    ],
)
def test_bad_batch_size_data_is_a_frame_error(data: bytes, revision: int, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        decode_message(Frame(mid=19, revision=revision, data=data))


def test_unknown_mid_is_kept_as_other() -> None:
    frame = Frame(mid=15, revision=2, data=b"001")
    assert decode_message(frame) == OtherMid(mid=15, revision=2, data=b"001")


def test_later_revisions_of_simple_mids_read_their_first_fields() -> None:
    assert decode_message(Frame(mid=5, revision=2, data=b"0018extra")) == CommandAccepted(mid=18)
    assert decode_message(Frame(mid=62, revision=2, data=b"0000004711")) == ResultAck()
    with pytest.raises(FrameError, match="data bytes"):
        decode_message(Frame(mid=5, revision=1, data=b"0018extra"))


@pytest.mark.parametrize(
    ("data", "revision", "match"),
    [
        (RESULT_DATA.replace(b"15001012", b"16001012"), 1, "parameter 15 expected"),
        (RESULT_DATA.replace(b"15001012", b"150010X2"), 1, "torque '0010X2' is not a number"),
        (RESULT_DATA.replace(b"091", b"093"), 1, "tightening status '3'"),
        (RESULT_DATA.replace(b"101", b"105"), 1, "torque status '5'"),
        (RESULT_DATA.replace(b"05-01:12", b"13-01:12"), 1, "not a valid time"),
        (RESULT_DATA.replace(b"2024-05-01:12:34:56", b"2024-05-01 12:34:56"), 1, "YYYY-MM-DD"),
        (RESULT_DATA + b"24", 1, "2 bytes after the last parameter"),
        (RESULT_DATA[:-3], 1, "data ends inside parameter 23"),
        (RESULT_DATA, 2, "revision 2 is not supported"),
    ],
)
def test_bad_result_data_is_a_frame_error(data: bytes, revision: int, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        decode_message(Frame(mid=61, revision=revision, data=data))


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"00X09999            \x00", "length field"),
        (b"00109999            \x00", "says 10 bytes"),
        (b"00219999            \x00", "says 21 bytes"),
        (b"00209999            ", "shorter than a header"),
        (b"00209999             \x00", "says 20 bytes but the frame has 21"),
        (b"00209999            A", "no NUL terminator at byte 20"),
        (b"002199990010        \xff\x00", "non-ASCII byte 0xff at offset 20"),
        (b"002099X90010        \x00", "MID '99X9' is not a number"),
        (b"002000000010        \x00", "MID 0000"),
        (b"0020    0010        \x00", "MID is blank"),
        (b"002099990X10        \x00", "revision '0X1'"),
        (b"00209999001X        \x00", "no-ack flag 'X'"),
        (b"0020999900100A      \x00", "station id"),
        (b"0020\x00999001         \x00", "NUL at byte 4"),
        (b"\x00", "shorter than a header"),
    ],
)
def test_decode_frame_rejects_garbage(raw: bytes, match: str) -> None:
    with pytest.raises(FrameError, match=match):
        decode_frame(raw)


@pytest.mark.parametrize(
    "frame",
    [
        Frame(mid=0),
        Frame(mid=10_000),
        Frame(mid=1, revision=0),
        Frame(mid=1, revision=1000),
        Frame(mid=1, station_id=100),
        Frame(mid=1, message_parts=10),
        Frame(mid=1, data=b"a\x00b"),
        Frame(mid=1, data=b"\xe9"),
        Frame(mid=1, data=b"x" * 9980),
    ],
)
def test_encode_frame_rejects_what_does_not_fit(frame: Frame) -> None:
    with pytest.raises(ValueError):
        encode_frame(frame)


@pytest.mark.parametrize(
    "message",
    [
        SelectParameterSet(pset=1000),
        SelectParameterSet(pset=-1),
        SetBatchSize(pset=1, batch_size=100),
        SetBatchSize(pset=1, batch_size=10_000, revision=2),
        SetBatchSize(pset=1000, batch_size=1),
        SetBatchSize(pset=1, batch_size=-1),
        SetBatchSize(pset=1, batch_size=1, revision=3),
        CommandError(mid=18, error=100),
        CommunicationStartAck(cell_id=1, channel_id=1, controller_name="x" * 26),
        CommunicationStartAck(cell_id=1, channel_id=1, controller_name="Schraubersteuerung ä"),
        CommunicationStartAck(revision=4, cell_id=1, channel_id=1, controller_name="x"),
        msgspec.structs.replace(EXPECTED_RESULT, torque_cnm=1_000_000),
        msgspec.structs.replace(EXPECTED_RESULT, angle=-1),
        msgspec.structs.replace(EXPECTED_RESULT, vin="VIN\n"),
        msgspec.structs.replace(EXPECTED_RESULT, timestamp=datetime(2024, 1, 1, 0, 0, 0, 5)),
    ],
)
def test_encode_message_rejects_what_does_not_fit(message: Message) -> None:
    with pytest.raises(ValueError):
        encode_message(message)


def test_torque_units_are_exact() -> None:
    assert nm(1012) == Decimal("10.12")
    assert nm_float(1012) == 10.12
    assert cnm_from_nm("10.12") == 1012
    assert cnm_from_nm(10.12) == 1012  # not 1011 from 10.12 * 100 == 1011.9999999999999
    assert cnm_from_nm(Decimal("0.005")) == 1
    assert cnm_from_nm(25) == 2500
    with pytest.raises(ValueError):
        cnm_from_nm("ten")
    with pytest.raises(ValueError):
        cnm_from_nm(float("nan"))


# --- stream decoder ---------------------------------------------------------------------------


def test_stream_splits_back_to_back_frames() -> None:
    data = encode_message(KeepAlive()) + GOLDEN_RESULT + encode_message(CommandAccepted(mid=60))
    decoder = FrameDecoder()
    assert [f.mid for f in frames_of(decoder.feed(data))] == [9999, 61, 5]
    assert (decoder.frames, decoder.malformed, decoder.dropped_bytes) == (3, 0, 0)


def test_stream_waits_for_the_rest_of_a_frame() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(GOLDEN_RESULT[:100]) == []
    assert decoder.buffered == 100
    assert frames_of(decoder.feed(GOLDEN_RESULT[100:])) == [decode_frame(GOLDEN_RESULT)]
    assert decoder.buffered == 0


def test_garbage_is_reported_once_and_skipped_to_the_next_nul() -> None:
    keep_alive = encode_message(KeepAlive())
    decoder = FrameDecoder()
    events = decoder.feed(b"hello world\r\n" + b"\x00" + keep_alive)
    assert len(events) == 2
    assert isinstance(events[0], Malformed)
    assert "length field" in events[0].reason
    assert events[1] == Frame(mid=9999)
    assert decoder.dropped_bytes == 14
    assert decoder.malformed == 1


def test_garbage_without_nul_keeps_being_dropped_until_one_comes() -> None:
    decoder = FrameDecoder()
    assert len(decoder.feed(b"xxxx")) == 1
    assert decoder.feed(b"y" * 5000) == []
    assert decoder.buffered == 0  # nothing piles up while discarding
    assert frames_of(decoder.feed(b"\x00" + KEEP_ALIVE_SPACES)) == [Frame(mid=9999)]
    assert decoder.dropped_bytes == 5005


def test_missing_nul_costs_only_that_frame() -> None:
    keep_alive = encode_message(KeepAlive())
    decoder = FrameDecoder()
    events = decoder.feed(keep_alive[:-1] + GOLDEN_RESULT)
    assert isinstance(events[0], Malformed)
    assert "no NUL after the declared length of 20" in events[0].reason
    assert frames_of(events) == [decode_frame(GOLDEN_RESULT)]
    assert decoder.dropped_bytes == 20


def test_too_large_length_is_caught_at_the_early_nul() -> None:
    decoder = FrameDecoder()
    events = decoder.feed(b"9999" + KEEP_ALIVE_SPACES[4:] + KEEP_ALIVE_SPACES)
    assert isinstance(events[0], Malformed)
    assert "declared end is byte 9999" in events[0].reason
    assert frames_of(events) == [Frame(mid=9999)]


def test_stray_nuls_between_frames_are_dropped_silently() -> None:
    decoder = FrameDecoder()
    events = decoder.feed(b"\x00\x00" + KEEP_ALIVE_SPACES + b"\x00" + KEEP_ALIVE_SPACES)
    assert events == [Frame(mid=9999), Frame(mid=9999)]
    assert (decoder.malformed, decoder.dropped_bytes) == (0, 3)


def test_frame_that_fails_to_decode_is_reported_and_dropped() -> None:
    decoder = FrameDecoder()
    events = decoder.feed(b"002099X90010        \x00" + KEEP_ALIVE_SPACES)
    assert isinstance(events[0], Malformed)
    assert "MID '99X9'" in events[0].reason
    assert events[0].excerpt == "002099X90010        "
    assert events[1:] == [Frame(mid=9999)]


# --- properties -------------------------------------------------------------------------------

ascii_data = st.binary(max_size=200).map(lambda raw: bytes(b % 127 + 1 for b in raw))
frames = st.builds(
    Frame,
    mid=st.integers(1, 9999),
    revision=st.integers(1, 999),
    no_ack=st.booleans(),
    station_id=st.none() | st.integers(0, 99),
    spindle_id=st.none() | st.integers(0, 99),
    sequence_number=st.none() | st.integers(0, 99),
    message_parts=st.none() | st.integers(0, 9),
    message_part_number=st.none() | st.integers(0, 9),
    data=ascii_data,
)
garbage = st.one_of(
    st.binary(max_size=40),
    st.sampled_from(
        [
            b"00X09999            \x00",
            b"0010" + KEEP_ALIVE_SPACES[4:],
            b"0030" + KEEP_ALIVE_SPACES[4:],
            KEEP_ALIVE_SPACES[:-1],
            b"002199990010        \xff\x00",
            b"\x00\x00",
        ]
    ),
)
stream_parts = st.lists(st.one_of(frames.map(encode_frame), garbage), max_size=8)


@given(frames)
def test_frame_roundtrip(frame: Frame) -> None:
    raw = encode_frame(frame)
    assert len(raw) == frame.length + 1
    assert decode_frame(raw) == frame


@given(st.binary(max_size=300))
def test_decode_frame_raises_only_frame_error(raw: bytes) -> None:
    try:
        frame = decode_frame(raw)
    except FrameError:
        return
    assert frame.length == len(raw) - 1


@given(frames, st.integers(0, 10_000), st.integers(0, 255))
def test_one_corrupted_byte_never_crashes(frame: Frame, at: int, byte: int) -> None:
    raw = bytearray(encode_frame(frame))
    raw[at % len(raw)] = byte
    try:
        decode_frame(bytes(raw))
    except FrameError:
        pass
    decoder = FrameDecoder()
    decoder.feed(bytes(raw) + KEEP_ALIVE_SPACES)
    assert decoder.frames + decoder.malformed >= 1


@given(stream_parts, st.lists(st.integers(0, 20_000), max_size=12))
def test_any_chunking_decodes_the_same(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    whole = FrameDecoder()
    expected = whole.feed(data)
    events, chunked = feed_in_chunks(data, cuts)
    assert events == expected
    assert chunked.dropped_bytes == whole.dropped_bytes
    assert chunked.buffered == whole.buffered
    # Every byte is accounted for: in a frame, dropped, or waiting for the rest of a frame.
    framed = sum(len(encode_frame(frame)) for frame in frames_of(expected))
    assert framed + whole.dropped_bytes + whole.buffered == len(data)


@given(st.binary(max_size=300), st.lists(frames, max_size=5))
def test_frames_after_nul_terminated_garbage_all_arrive(junk: bytes, good: list[Frame]) -> None:
    good = [*good, Frame(mid=9999)]  # ends the stream, so nothing is left waiting
    decoder = FrameDecoder()
    events = decoder.feed(junk + b"\x00" + b"".join(encode_frame(f) for f in good))
    assert frames_of(events)[-len(good) :] == good
    assert decoder.buffered == 0


@given(st.lists(frames, min_size=1, max_size=5), st.integers(0, 4))
def test_a_lost_nul_costs_one_frame(good: list[Frame], which: int) -> None:
    good = [*good, Frame(mid=9999)]  # the frame after the broken one shows where it ended
    which %= len(good) - 1
    raw = [encode_frame(f) for f in good]
    raw[which] = raw[which][:-1]
    decoder = FrameDecoder()
    events = decoder.feed(b"".join(raw))
    assert frames_of(events) == good[:which] + good[which + 1 :]
    assert decoder.malformed == 1


# --- typed MIDs -------------------------------------------------------------------------------


def text(width: int) -> st.SearchStrategy[str]:
    printable = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
    return st.text(printable, max_size=width).map(lambda s: s.rstrip(" "))


def number(width: int) -> st.SearchStrategy[int]:
    return st.integers(0, 10**width - 1)


seconds = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda value: value.replace(microsecond=0)
)
start_acks = st.integers(1, 3).flatmap(
    lambda rev: st.builds(
        CommunicationStartAck,
        revision=st.just(rev),
        cell_id=number(4),
        channel_id=number(2),
        controller_name=text(25),
        supplier_code=text(3) if rev >= 2 else st.just(""),
        open_protocol_version=text(19) if rev >= 3 else st.just(""),
        controller_software_version=text(19) if rev >= 3 else st.just(""),
        tool_software_version=text(19) if rev >= 3 else st.just(""),
    )
)
results = st.builds(
    TighteningResult,
    cell_id=number(4),
    channel_id=number(2),
    controller_name=text(25),
    vin=text(25),
    job_id=number(2),
    pset=number(3),
    batch_size=number(4),
    batch_counter=number(4),
    tightening_ok=st.booleans(),
    torque_status=st.sampled_from(LimitStatus),
    angle_status=st.sampled_from(LimitStatus),
    torque_min_cnm=number(6),
    torque_max_cnm=number(6),
    torque_target_cnm=number(6),
    torque_cnm=number(6),
    angle_min=number(5),
    angle_max=number(5),
    angle_target=number(5),
    angle=number(5),
    timestamp=seconds,
    pset_changed_at=seconds,
    batch_status=st.sampled_from(BatchStatus),
    tightening_id=number(10),
)
messages = st.one_of(
    st.builds(CommunicationStart, revision=st.integers(1, 999)),
    start_acks,
    st.just(CommunicationStop()),
    st.builds(CommandError, mid=number(4), error=number(2)),
    st.builds(CommandAccepted, mid=number(4)),
    st.builds(SelectParameterSet, pset=number(3)),
    st.builds(SetBatchSize, pset=number(3), batch_size=number(2)),
    st.builds(SetBatchSize, pset=number(3), batch_size=number(4), revision=st.just(2)),
    st.just(DisableTool()),
    st.just(EnableTool()),
    st.builds(ResultSubscribe, revision=st.integers(1, 999), no_ack=st.booleans()),
    results,
    st.just(ResultAck()),
    st.just(ResultUnsubscribe()),
    st.just(KeepAlive()),
    st.builds(
        OtherMid,
        mid=st.integers(1, 9999).filter(lambda mid: mid not in set(Mid)),
        revision=st.integers(1, 999),
        data=ascii_data,
    ),
)


@given(messages)
def test_message_roundtrip(message: Message) -> None:
    assert roundtrip(message) == message


@given(st.sampled_from(Mid), st.integers(1, 3), ascii_data)
def test_decode_message_raises_only_frame_error(mid: Mid, revision: int, data: bytes) -> None:
    try:
        decode_message(Frame(mid=mid, revision=revision, data=data))
    except FrameError:
        pass


@given(results, st.integers(0, 210), st.characters(min_codepoint=0x20, max_codepoint=0x7E))
def test_result_with_one_changed_character_decodes_or_is_a_frame_error(
    result: TighteningResult, at: int, char: str
) -> None:
    data = bytearray(encode_message(result)[20:-1])
    data[at] = ord(char)
    try:
        decoded = decode_message(Frame(mid=61, data=bytes(data)))
    except FrameError:
        return
    assert isinstance(decoded, TighteningResult)


@given(number(3), number(4))
def test_batch_size_command_roundtrips_in_the_fewest_digits(pset: int, size: int) -> None:
    command = batch_size_command(pset, size)
    assert command.revision == (1 if size <= 99 else 2)
    assert roundtrip(command) == command
    frame = decode_frame(encode_message(command))
    assert (frame.mid, frame.revision) == (19, command.revision)
    assert int(frame.data[3:]) == size and len(frame.data) == (5 if size <= 99 else 7)


@given(st.integers(1, 3), st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                  max_size=9))
def test_any_batch_size_data_decodes_or_is_a_frame_error(revision: int, data: str) -> None:
    try:
        decoded = decode_message(Frame(mid=19, revision=revision, data=data.encode("ascii")))
    except FrameError:
        return
    assert isinstance(decoded, SetBatchSize)
    assert encode_message(decoded)[20:-1] == data.encode("ascii")
