"""Scanner codec: result framing, no-reads, DMCC commands and answers, fuzzed with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.scanner.codec import (
    ETX,
    GS,
    STX,
    CodeRead,
    CommandDecoder,
    DmccCommand,
    DmccResponse,
    DmccStatus,
    FrameDecoder,
    Framing,
    Malformed,
    NoRead,
    ScannerMessage,
    Terminator,
    aim_identifier,
    describe_malformed,
    encode_command,
    encode_no_read,
    encode_read,
    encode_response,
    parse_command,
    parse_response,
    quote_argument,
    xor_checksum,
)

GS1_CODE = b"]d201046000000000182113ABCDEFGHIJKLM\x1d93ab+/"
FRAMINGS = [
    Framing(terminator=Terminator.CRLF),
    Framing(terminator=Terminator.CR),
    Framing(terminator=Terminator.LF),
    Framing(stx_etx=True),
]


def decode(framing: Framing, *chunks: bytes) -> list[ScannerMessage]:
    decoder = FrameDecoder(framing)
    messages: list[ScannerMessage] = []
    for chunk in chunks:
        messages += decoder.feed(chunk)
    return messages


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


# --- result lines ------------------------------------------------------------------------


@pytest.mark.parametrize("framing", FRAMINGS, ids=lambda f: f"{f.terminator}-stx{f.stx_etx}")
def test_gs1_code_round_trips_with_gs_and_symbology_prefix(framing: Framing) -> None:
    wire = encode_read(GS1_CODE, framing)
    [message] = decode(framing, wire)
    assert message == CodeRead(data=GS1_CODE)
    assert isinstance(message, CodeRead)
    assert message.text == GS1_CODE.decode("latin-1")
    assert chr(GS) in message.text
    assert aim_identifier(message.data) == "]d2"


def test_wire_forms_per_terminator() -> None:
    assert encode_read(b"A1", Framing(terminator=Terminator.CR)) == b"A1\r"
    assert encode_read(b"A1", Framing(terminator=Terminator.LF)) == b"A1\n"
    assert encode_read(b"A1", Framing()) == b"A1\r\n"
    assert encode_read(b"A1", Framing(stx_etx=True)) == b"\x02A1\x03"
    assert encode_no_read(Framing()) == b"NOREAD\r\n"


def test_stream_of_codes_no_reads_and_keepalives() -> None:
    messages = decode(Framing(), b"A1\r\n\r\nNOREAD\r\nB2\r", b"\nC3", b"\r\n")
    assert messages == [CodeRead(data=b"A1"), NoRead(), CodeRead(data=b"B2"), CodeRead(data=b"C3")]


def test_custom_no_read_string_and_none() -> None:
    assert decode(Framing(no_read=b"\x18"), b"\x18\r\n") == [NoRead()]
    # Without a no-read string, NOREAD is just a code (some codes say odd things).
    assert decode(Framing(no_read=b""), b"NOREAD\r\n") == [CodeRead(data=b"NOREAD")]
    with pytest.raises(ValueError, match="no no-read"):
        encode_no_read(Framing(no_read=b""))


def test_lf_terminator_keeps_a_cr_that_belongs_to_the_code() -> None:
    # Exact framing: with LF lines a CR is code data, not half a terminator.
    assert decode(Framing(terminator=Terminator.LF), b"A1\r\n") == [CodeRead(data=b"A1\r")]


def test_overlong_line_is_malformed_and_the_next_line_still_reads() -> None:
    framing = Framing(max_length=10)
    for chunks in ([b"X" * 25 + b"\r\nOK\r\n"], [b"X" * 5, b"X" * 20, b"\r", b"\nOK\r\n"]):
        messages = decode(framing, *chunks)
        assert len(messages) == 2, chunks
        bad, good = messages
        assert isinstance(bad, Malformed)
        assert bad.reason == "longer than 10 bytes"
        assert bad.excerpt == b"X" * 11
        assert good == CodeRead(data=b"OK")


def test_line_of_exactly_max_length_is_fine() -> None:
    framing = Framing(max_length=4, no_read=b"")
    assert decode(framing, b"ABC", b"D\r", b"\n") == [CodeRead(data=b"ABCD")]


def test_stx_etx_frames_with_terminators_junk_and_interruptions() -> None:
    framing = Framing(stx_etx=True, max_length=8)
    messages = decode(
        framing,
        b"\x02A1\x03\r\n",  # terminator after ETX is fine
        b"\x02B2\r\nX\x03",  # terminator bytes inside a frame are code data
        b"junk\x02C3\x03",  # junk before a frame is reported, the frame still reads
        b"\x02cut\x02D4\x03",  # a new STX ends an unfinished frame
        b"\x02\x03",
        b"\x02" + b"Z" * 20 + b"\x03\x02E5\x03",
        b"\x02NOREAD\x03",
        b"outside\r\n",
    )
    assert messages == [
        CodeRead(data=b"A1"),
        CodeRead(data=b"B2\r\nX"),
        Malformed(reason="bytes outside a frame", excerpt=b"junk"),
        CodeRead(data=b"C3"),
        Malformed(reason="frame cut short by STX", excerpt=b"cut"),
        CodeRead(data=b"D4"),
        Malformed(reason="empty frame", excerpt=b""),
        Malformed(reason="longer than 8 bytes", excerpt=b"Z" * 9),
        CodeRead(data=b"E5"),
        NoRead(),
        Malformed(reason="bytes outside a frame", excerpt=b"outside"),
    ]


def test_encode_refuses_what_the_framing_cannot_carry() -> None:
    with pytest.raises(ValueError, match="terminator"):
        encode_read(b"A\r\nB", Framing())
    with pytest.raises(ValueError, match="terminator"):
        encode_read(b"A\rB", Framing(terminator=Terminator.CR))
    with pytest.raises(ValueError, match="STX or ETX"):
        encode_read(b"A\x03B", Framing(stx_etx=True))
    with pytest.raises(ValueError, match="empty"):
        encode_read(b"", Framing())
    with pytest.raises(ValueError, match="max_length"):
        encode_read(b"x" * 11, Framing(max_length=10))
    with pytest.raises(ValueError, match="DMCC"):
        encode_read(b"||[0]", Framing())
    with pytest.raises(ValueError, match="no-read"):
        encode_read(b"NOREAD", Framing())
    with pytest.raises(ValueError, match="max_length"):
        Framing(max_length=0)
    with pytest.raises(ValueError, match="no_read contains the terminator"):
        Framing(no_read=b"NO\r\nREAD")


def test_aim_identifier() -> None:
    assert aim_identifier(b"]C1010460") == "]C1"
    assert aim_identifier(b"]Q3abc") == "]Q3"
    assert aim_identifier(b"0104600") is None
    assert aim_identifier(b"]d") is None


# --- DMCC ----------------------------------------------------------------------------------


def test_command_encoding_follows_the_documented_header_forms() -> None:
    assert encode_command("TRIGGER ON") == b"||>TRIGGER ON\r\n"
    assert encode_command("GET DEVICE.TYPE", command_id=123) == b"||0:123>GET DEVICE.TYPE\r\n"
    body = b"||1>TRIGGER OFF"
    assert encode_command("TRIGGER OFF", checksum=True) == body + bytes([xor_checksum(body)]) + (
        b"\r\n"
    )
    with pytest.raises(ValueError, match="printable ASCII"):
        encode_command("TRIGGER\r\nON")
    with pytest.raises(ValueError, match="printable ASCII"):
        encode_command("")


def test_quote_argument_escapes_what_dmcc_says() -> None:
    assert quote_argument('a"b\\c|d\te\rf\ng') == '"a\\"b\\\\c\\|d\\te\\rf\\ng"'
    assert encode_command(f"SET DEVICE.NAME {quote_argument('line 1|A')}") == (
        b'||>SET DEVICE.NAME "line 1\\|A"\r\n'
    )


def test_response_parsing() -> None:
    assert parse_response(b"||[0]ON") == DmccResponse(status=0, data=b"ON")
    assert parse_response(b"||0:123[0]DataMan 370") == DmccResponse(
        status=0, command_id=123, data=b"DataMan 370"
    )
    # Firmware that adds header fields: accepted, the extra fields ignored.
    assert parse_response(b"||:::2[101]") == DmccResponse(status=101)
    response = parse_response(b"||0:7[102]")
    assert isinstance(response, DmccResponse)
    assert response.status_name == "PARAMETER_INVALID"
    assert DmccResponse(status=777).status_name == "status 777"
    assert isinstance(parse_response(b"||>TRIGGER ON"), Malformed)
    assert isinstance(parse_response(b"||[x]"), Malformed)


def test_response_checksum_is_checked() -> None:
    wire = encode_response(0, b"ON", command_id=9, checksum=True)
    assert parse_response(wire[:-2]) == DmccResponse(status=0, command_id=9, data=b"ON")
    tampered = wire[:-4] + b"X" + wire[-3:]
    bad = parse_response(tampered[:-2])
    assert isinstance(bad, Malformed)
    assert bad.reason == "DMCC answer checksum mismatch"


@pytest.mark.parametrize("framing", FRAMINGS, ids=lambda f: f"{f.terminator}-stx{f.stx_etx}")
def test_answers_interleave_with_results_whatever_the_result_terminator(
    framing: Framing,
) -> None:
    wire = (
        encode_read(b"A1", framing)
        + encode_response(0, b"ON", command_id=4)
        + encode_read(b"B2", framing)
        + encode_response(1, b"C3")  # a read the reader made on its own, in extended mode
        + encode_response(1)
        + encode_no_read(framing)
    )
    for cut in range(len(wire)):
        assert decode(framing, wire[:cut], wire[cut:]) == [
            CodeRead(data=b"A1"),
            DmccResponse(status=0, command_id=4, data=b"ON"),
            CodeRead(data=b"B2"),
            CodeRead(data=b"C3"),
            NoRead(),
            NoRead(),
        ], cut


def test_response_encoding_refuses_line_breaks_and_bad_status() -> None:
    with pytest.raises(ValueError, match="CR or LF"):
        encode_response(0, b"a\nb")
    with pytest.raises(ValueError, match="status"):
        encode_response(10000)


def test_command_parsing_as_a_reader_does() -> None:
    assert parse_command(b"||>trigger on") == DmccCommand(text="trigger on")
    assert parse_command(b"||>trigger on").words == ["TRIGGER", "on"]
    assert parse_command(b"||0:5>GET DEVICE.TYPE") == DmccCommand(
        text="GET DEVICE.TYPE", command_id=5
    )
    wire = encode_command("TRIGGER ON", command_id=12, checksum=True)
    assert parse_command(wire[:-2]) == DmccCommand(text="TRIGGER ON", command_id=12, checksum=True)
    bad = parse_command(wire[:-3] + bytes([wire[-3] ^ 0x01]))
    assert isinstance(bad, Malformed)
    assert bad.reason == "DMCC command checksum mismatch"
    assert isinstance(parse_command(b"TRIGGER ON"), Malformed)
    assert isinstance(parse_command(b"||>"), Malformed)
    assert isinstance(parse_command(b"||>\xff"), Malformed)


def test_command_decoder_splits_lines_and_survives_floods() -> None:
    decoder = CommandDecoder(max_line=32)
    out = decoder.feed(b"||>TRIGGER ON\r\n||0:1>GET DEVICE.TYPE\n\r\nhello\r\n||>TRI")
    assert out[:2] == [
        DmccCommand(text="TRIGGER ON"),
        DmccCommand(text="GET DEVICE.TYPE", command_id=1),
    ]
    assert isinstance(out[2], Malformed)
    assert decoder.feed(b"GGER OFF\r\n") == [DmccCommand(text="TRIGGER OFF")]
    flood = decoder.feed(b"x" * 100)
    assert [m.reason for m in flood if isinstance(m, Malformed)] == ["longer than 32 bytes"]
    assert decoder.feed(b"x" * 100 + b"\r\n||>TRIGGER ON\r\n") == [DmccCommand(text="TRIGGER ON")]


def test_checksum_that_would_be_a_line_break_is_refused() -> None:
    for command_id in range(200):
        try:
            wire = encode_command("TRIGGER ON", command_id=command_id, checksum=True)
        except ValueError as exc:
            assert "CR or LF" in str(exc)
            continue
        assert wire.count(b"\n") == 1
        assert wire.count(b"\r") == 1


def test_describe_malformed_quotes_the_excerpt() -> None:
    text = describe_malformed(Malformed(reason="bytes outside a frame", excerpt=b"\xffab"))
    assert text == "bytes outside a frame: b'\\xffab'"


# --- properties ----------------------------------------------------------------------------


@st.composite
def framings(draw: st.DrawFn) -> Framing:
    max_length = draw(st.integers(min_value=1, max_value=64))
    no_read = draw(st.sampled_from([b"NOREAD", b"", b"\x18"]))
    return Framing(
        terminator=draw(st.sampled_from(list(Terminator))),
        stx_etx=draw(st.booleans()),
        max_length=max_length,
        no_read=no_read if len(no_read) <= max_length else b"",
    )


def carriable(framing: Framing, code: bytes) -> bool:
    try:
        encode_read(code, framing)
    except ValueError:
        return False
    return True


@given(
    framing=framings(),
    codes=st.lists(st.binary(min_size=1, max_size=64), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_any_carriable_codes_round_trip_however_the_stream_is_cut(
    framing: Framing, codes: list[bytes], cuts: list[int]
) -> None:
    codes = [code for code in codes if carriable(framing, code)]
    wire = b"".join(encode_read(code, framing) for code in codes)
    assert decode(framing, *split(wire, cuts)) == [CodeRead(data=code) for code in codes]


# Bytes that mean something to the decoder, so fuzzing hits its branches often.
_SPECIAL = [STX, ETX, 0x0D, 0x0A, *b"||[]0:1>NOREAD"]
protocolish = st.lists(
    st.sampled_from(_SPECIAL) | st.integers(min_value=0, max_value=255), max_size=400
).map(bytes)


@given(
    framing=framings(),
    data=st.binary(max_size=400) | protocolish,
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12),
)
def test_arbitrary_bytes_never_raise_and_decode_the_same_however_cut(
    framing: Framing, data: bytes, cuts: list[int]
) -> None:
    whole = decode(framing, data)
    assert decode(framing, *split(data, cuts)) == whole
    for message in whole:
        if isinstance(message, CodeRead):
            assert 0 < len(message.data) <= framing.max_length
        if isinstance(message, Malformed):
            assert len(message.excerpt) <= 80


@given(
    framing=framings(),
    noise=st.binary(max_size=200),
    code=st.binary(min_size=1, max_size=32),
)
def test_decoder_recovers_after_noise_at_the_next_frame(
    framing: Framing, noise: bytes, code: bytes
) -> None:
    if not carriable(framing, code) or code == b"NOREAD":
        return
    if framing.terminator is Terminator.CR and code.startswith(b"\n"):
        return  # after a line starting `||` (a DMCC answer, CR LF ended) one LF is dropped
    # Noise cut off by a terminator (or STX) never swallows the code that follows.
    resync = bytes([ETX, STX]) if framing.stx_etx else framing.terminator.wire
    if framing.stx_etx:
        wire = noise + resync[1:] + code + bytes([ETX])
    else:
        wire = noise + resync + encode_read(code, framing)
    messages = decode(framing, wire)
    assert messages[-1] == CodeRead(data=code)


@given(
    text=st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1),
    command_id=st.none() | st.integers(min_value=0, max_value=99_999),
    checksum=st.booleans(),
)
def test_commands_round_trip_through_the_reader_side_decoder(
    text: str, command_id: int | None, checksum: bool
) -> None:
    try:
        wire = encode_command(text, command_id=command_id, checksum=checksum)
    except ValueError:
        return  # a checksum byte that is CR or LF
    assert CommandDecoder().feed(wire) == [
        DmccCommand(text=text, command_id=command_id, checksum=checksum)
    ]


@given(
    status=st.sampled_from(list(DmccStatus)).map(int) | st.integers(min_value=0, max_value=9999),
    data=st.binary(max_size=40).filter(lambda d: b"\r" not in d and b"\n" not in d),
    command_id=st.none() | st.integers(min_value=0, max_value=99_999),
    checksum=st.booleans(),
    framing=framings(),
)
def test_answers_round_trip(
    status: int, data: bytes, command_id: int | None, checksum: bool, framing: Framing
) -> None:
    framing = Framing(
        terminator=framing.terminator, stx_etx=framing.stx_etx, no_read=framing.no_read
    )
    try:
        wire = encode_response(status, data, command_id=command_id, checksum=checksum)
    except ValueError:
        return
    if framing.stx_etx and (STX in wire or ETX in wire):
        return  # a frame marker inside an answer (data or checksum byte) starts a frame
    [message] = decode(framing, wire)
    if status == DmccStatus.READ_STRING:
        assert isinstance(message, CodeRead | NoRead)
    else:
        assert message == DmccResponse(status=status, command_id=command_id, data=data)


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 1000), max_size=8))
def test_command_decoder_never_raises(data: bytes, cuts: list[int]) -> None:
    decoder = CommandDecoder(max_line=64)
    for chunk in split(data, cuts):
        for message in decoder.feed(chunk):
            assert isinstance(message, DmccCommand | Malformed)
