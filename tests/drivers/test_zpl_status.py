"""~HS host status and label counter answers: parsing, round trips and malformed input."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError
from drivers.zpl.status import (
    LABEL_COUNT_QUERY,
    PrinterStatus,
    ReplyReader,
    encode_host_status,
    encode_sgd_value,
    parse_host_status,
    parse_label_count,
)

# Shaped like a real printer's answer: paper out, 2 formats waiting, buffer full, under
# temperature, head up, thermal transfer, tear-off, 5 labels left in the batch.
REAL = (
    b"\x02030,1,0,1245,002,1,0,0,000,0,1,0\x03\r\n"
    b"\x02001,0,1,0,1,2,6,0,00000005,1,000\x03\r\n"
    b"\x021234,0\x03\r\n"
)


def test_a_printer_answer_is_read_field_by_field() -> None:
    status = parse_host_status(REAL)
    assert status == PrinterStatus(
        communication_settings=30,
        paper_out=True,
        paused=False,
        label_length_dots=1245,
        formats_in_buffer=2,
        buffer_full=True,
        under_temperature=True,
        function_settings=1,
        head_open=True,
        ribbon_out=False,
        thermal_transfer=True,
        print_mode=2,
        print_width_mode=6,
        labels_remaining=5,
        format_while_printing=True,
        password=1234,
    )
    assert status.problems == ("paper out", "head open")
    assert not status.ready
    assert not status.idle


@pytest.mark.parametrize(
    ("flag", "problem"),
    [
        ("paper_out", "paper out"),
        ("paused", "paused"),
        ("head_open", "head open"),
        ("ribbon_out", "ribbon out"),
        ("over_temperature", "head over temperature"),
    ],
)
def test_each_stopping_condition_is_named(flag: str, problem: str) -> None:
    status = parse_host_status(encode_host_status(PrinterStatus(**{flag: True})))
    assert getattr(status, flag) is True
    assert status.problems == (problem,)
    assert not status.ready


def test_a_ready_idle_printer() -> None:
    status = parse_host_status(encode_host_status(PrinterStatus(under_temperature=True)))
    assert status.ready
    assert status.idle
    busy = PrinterStatus(labels_remaining=1)
    assert busy.ready
    assert not busy.idle


def test_fields_appended_by_later_firmware_are_ignored() -> None:
    answer = REAL.replace(b"0,1,0\x03", b"0,1,0,7,8\x03", 1).replace(b"1234,0", b"1234,0,9")
    assert parse_host_status(answer) == parse_host_status(REAL)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (REAL[: REAL.rindex(b"\x02")], "incomplete"),
        (REAL + b"\x02", "bytes after"),
        (b"junk" + REAL, "expected STX"),
        (REAL.replace(b"1245", b"12a5"), "string 1 field 4 is not a number"),
        (REAL.replace(b",1,000\x03", b",2,000\x03"), "format_while_printing.*0/1 flag"),
        (REAL.replace(b"1234,0", b"1234"), "string 3 has 1 fields"),
        (REAL.replace(b"030", b"\xe9\xe9\xe9"), "not ASCII"),
        (REAL.replace(b"1234", b"1" * 300), "longer than 256"),
        (REAL.replace(b"1234", b"1" * 20), "not a number"),
        (b"\x02" + b"\x02" + REAL, "STX inside a frame"),
    ],
)
def test_malformed_answers_are_frame_errors(answer: bytes, message: str) -> None:
    with pytest.raises(FrameError, match=message):
        parse_host_status(answer)


def _status_strategy() -> st.SearchStrategy[PrinterStatus]:
    widths = {
        "communication_settings": 3,
        "label_length_dots": 4,
        "formats_in_buffer": 3,
        "function_settings": 3,
        "print_mode": 1,
        "print_width_mode": 1,
        "labels_remaining": 8,
        "graphics_stored": 3,
        "password": 4,
    }
    fields = {}
    for name in msgspec.structs.fields(PrinterStatus):
        digits = widths.get(name.name)
        fields[name.name] = st.booleans() if digits is None else st.integers(0, 10**digits - 1)
    return st.fixed_dictionaries(fields).map(lambda values: PrinterStatus(**values))


@given(status=_status_strategy())
def test_every_valid_answer_parses_back(status: PrinterStatus) -> None:
    assert parse_host_status(encode_host_status(status)) == status


@given(data=st.binary(max_size=300))
def test_random_bytes_give_a_status_or_a_frame_error(data: bytes) -> None:
    try:
        parse_host_status(data)
    except FrameError:
        pass


@given(status=_status_strategy(), at=st.integers(0, 120), junk=st.binary(max_size=4))
def test_damaged_answers_give_a_status_or_a_frame_error(
    status: PrinterStatus, at: int, junk: bytes
) -> None:
    answer = encode_host_status(status)
    at %= len(answer)
    try:
        parse_host_status(answer[:at] + junk + answer[at + 1 :])
    except FrameError:
        pass


def test_numbers_too_wide_for_the_answer_are_refused() -> None:
    with pytest.raises(ValueError, match="labels_remaining"):
        encode_host_status(PrinterStatus(labels_remaining=10**8))


# --- reply stream and label counter ----------------------------------------------------------


def test_answers_split_anywhere_are_taken_in_order() -> None:
    stream = REAL + encode_sgd_value("4711") + encode_host_status(PrinterStatus()) + b'"?"'
    reader = ReplyReader()
    taken: list[object] = []
    wanted = ["frames", "quoted", "frames", "quoted"]
    for byte in stream:
        reader.feed(bytes([byte]))
        while taken != wanted:
            kind = wanted[len(taken)]
            answer = reader.take_frames(3) if kind == "frames" else reader.take_quoted()
            if answer is None:
                break
            taken.append(kind)
            if kind == "quoted":
                assert answer in ("4711", "?")
    assert taken == wanted
    assert reader.buffered == 0


def test_reply_reader_refuses_what_is_no_answer() -> None:
    reader = ReplyReader()
    reader.feed(b"\r\nhello")
    with pytest.raises(FrameError, match="expected a quoted value"):
        reader.take_quoted()
    reader.clear()
    reader.feed(b'"' + b"9" * 300)
    with pytest.raises(FrameError, match="longer than"):
        reader.take_quoted()


def test_label_count_values() -> None:
    assert LABEL_COUNT_QUERY == b'! U1 getvar "odometer.total_label_count"\r\n'
    assert parse_label_count(" 1234 ") == 1234
    for value in ("?", "", "12.5", "-1", "1e3"):
        with pytest.raises(FrameError, match="no label count"):
            parse_label_count(value)
    with pytest.raises(ValueError, match="quotes"):
        encode_sgd_value('a"b')
