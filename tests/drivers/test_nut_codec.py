"""NUT codec and ups.status parsing: known lines, quoting, stream splitting, garbage, numbers."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.nut.codec import (
    MAX_LINE,
    BeginList,
    Cmd,
    CommandDecoder,
    EndList,
    Err,
    LineSplitter,
    Malformed,
    NutSyntaxError,
    Ok,
    Request,
    Response,
    ResponseDecoder,
    Text,
    UpsEntry,
    Var,
    decode_response,
    encode_get_var,
    encode_instcmd,
    encode_line,
    encode_list_cmd,
    encode_list_ups,
    encode_list_var,
    encode_login,
    encode_logout,
    encode_netver,
    encode_password,
    encode_response,
    encode_rw,
    encode_set_var,
    encode_username,
    encode_ver,
    quote,
    split_words,
    unquote,
)
from drivers.nut.status import (
    StatusFlag,
    UpsStatus,
    parse_number,
    parse_status,
    reading_from_vars,
)


def decode_all(data: bytes, max_line: int = MAX_LINE) -> list[Response]:
    return ResponseDecoder(max_line).feed(data)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[start:end] for start, end in pairwise(bounds)]


def feed_in_chunks(data: bytes, cuts: list[int], max_line: int = MAX_LINE) -> list[Response]:
    decoder = ResponseDecoder(max_line)
    out: list[Response] = []
    for chunk in split(data, cuts):
        out += decoder.feed(chunk)
    return out


# --- strategies ----------------------------------------------------------------------------

# Any text a line can carry: everything but CR, LF, NUL and lone surrogates.
line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"))
# Names as upsd sends them bare: no blanks, quotes, backslashes or control characters.
names = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"),
        blacklist_characters='"\\\x85\xa0\u1680\u2028\u2029',
    ),
    min_size=1,
    max_size=30,
).filter(lambda s: not any(c.isspace() for c in s))
values = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=60
)
responses = st.one_of(
    st.builds(Ok, detail=st.lists(names, max_size=3).map(" ".join)),
    st.builds(Err, word=names, extra=st.lists(values, max_size=2).map(tuple)),
    st.builds(Var, ups=names, name=names, value=values),
    st.builds(UpsEntry, name=names, description=values),
    st.builds(Cmd, ups=names, name=names),
    st.builds(BeginList, query=st.lists(names, min_size=1, max_size=3).map(tuple)),
    st.builds(EndList, query=st.lists(names, min_size=1, max_size=3).map(tuple)),
)


# --- quoting and words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("GET VAR ups1 ups.status", ["GET", "VAR", "ups1", "ups.status"]),
        ('VAR ups1 ups.status "OB DISCHRG LB"', ["VAR", "ups1", "ups.status", "OB DISCHRG LB"]),
        ('a  \t"b c"   d ', ["a", "b c", "d"]),
        (r'"say \"hi\""', ['say "hi"']),
        (r'"C:\\ups"', ["C:\\ups"]),
        (r"bare\ word", ["bare word"]),
        ('""', [""]),
        ("   ", []),
    ],
)
def test_split_words(line: str, words: list[str]) -> None:
    assert split_words(line) == words


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('VAR ups1 x "open', "unterminated quoted word"),
        ('"ends with \\', "backslash at the end"),
        ("trailing\\", "backslash at the end"),
        ('"a"b', "text right after a closing quote"),
        ('a"b"', "quote inside an unquoted word"),
        ("two\nlines", "cannot be sent"),
        ("nul\x00", "cannot be sent"),
    ],
)
def test_split_words_says_why_a_line_is_not_protocol(line: str, reason: str) -> None:
    with pytest.raises(NutSyntaxError, match=reason):
        split_words(line)


def test_quote_escapes_quotes_and_backslashes_only() -> None:
    assert quote('a "b" \\ c') == r'"a \"b\" \\ c"'
    assert unquote(r'"a \"b\" \\ c"') == 'a "b" \\ c'
    with pytest.raises(NutSyntaxError):
        quote("no\nnewlines")
    with pytest.raises(NutSyntaxError, match="one word"):
        unquote('"a" "b"')


@given(line_text)
def test_quote_round_trips_any_text(text: str) -> None:
    assert unquote(quote(text)) == text


@given(st.lists(line_text, max_size=6))
def test_quoted_words_split_back_exactly(words: list[str]) -> None:
    assert split_words(" ".join(quote(word) for word in words)) == words


@given(st.text())
def test_split_words_raises_only_its_own_error(line: str) -> None:
    try:
        split_words(line)
    except NutSyntaxError:
        pass


# --- answers -------------------------------------------------------------------------------


def test_each_answer_kind_decodes() -> None:
    data = (
        b"OK\n"
        b"OK Goodbye\n"
        b"ERR UNKNOWN-UPS\n"
        b"ERR ACCESS-DENIED some extra\n"
        b'VAR su700 ups.status "OB DISCHRG LB"\n'
        b'VAR su700 ups.id "A \\"quoted\\" \\\\ name"\n'
        b"BEGIN LIST UPS\n"
        b'UPS su700 "Development box"\n'
        b"END LIST UPS\n"
        b"BEGIN LIST VAR su700\n"
        b"END LIST VAR su700\n"
        b"CMD su700 load.on\n"
        b"Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/\n"
        b"1.3\n"
    )
    assert decode_all(data) == [
        Ok(),
        Ok(detail="Goodbye"),
        Err(word="UNKNOWN-UPS"),
        Err(word="ACCESS-DENIED", extra=("some", "extra")),
        Var(ups="su700", name="ups.status", value="OB DISCHRG LB"),
        Var(ups="su700", name="ups.id", value='A "quoted" \\ name'),
        BeginList(query=("UPS",)),
        UpsEntry(name="su700", description="Development box"),
        EndList(query=("UPS",)),
        BeginList(query=("VAR", "su700")),
        EndList(query=("VAR", "su700")),
        Cmd(ups="su700", name="load.on"),
        Text(line="Network UPS Tools upsd 2.8.0 - http://www.networkupstools.org/"),
        Text(line="1.3"),
    ]


def test_crlf_and_blank_lines() -> None:
    assert decode_all(b"OK\r\n\r\n  \nERR DATA-STALE\r\n") == [Ok(), Err(word="DATA-STALE")]


def test_partial_line_waits_for_its_lf() -> None:
    decoder = ResponseDecoder()
    assert decoder.feed(b'VAR ups1 battery.charge "9') == []
    assert decoder.buffered == 26
    assert decoder.feed(b'5"\r') == []
    assert decoder.feed(b"\nOK") == [Var(ups="ups1", name="battery.charge", value="95")]
    assert decoder.feed(b"\n") == [Ok()]
    assert decoder.buffered == 0


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"VAR ups1 ups.status", "expected VAR <ups> <name> <value>"),
        (b'VAR ups1 ups.status "OL" extra', "expected VAR"),
        (b'VAR ups1 ups.status "OL', "unterminated quoted word"),
        (b"UPS ups1", "expected UPS <name> <description>"),
        (b"CMD ups1", "expected CMD <ups> <command>"),
        (b"BEGIN VAR ups1", "expected BEGIN LIST"),
        (b"END LIST", "expected END LIST"),
        (b"ERR", "ERR without an error word"),
        (b'ERR ""', "ERR without an error word"),
        (b'ERR "open', "unterminated quoted word"),
    ],
)
def test_malformed_answers_say_why_and_quote_the_line(line: bytes, reason: str) -> None:
    [answer] = decode_all(line + b"\n")
    assert isinstance(answer, Malformed)
    assert answer.reason.startswith(reason)
    assert answer.line == line.decode()


def test_free_text_with_a_stray_quote_is_still_text() -> None:
    # VER is free text; a quote in it is no reason to reject the server.
    assert decode_all(b'upsd "beta\n') == [Text(line='upsd "beta')]


def test_bytes_that_are_not_utf8_are_replaced_not_rejected() -> None:
    [answer] = decode_all(b'VAR ups1 ups.mfr "M\xfcller"\n')
    assert answer == Var(ups="ups1", name="ups.mfr", value="M\ufffdller")


def test_line_of_max_length_is_accepted_and_one_more_byte_is_not() -> None:
    head = b'VAR u v "'
    line = head + b"x" * (MAX_LINE - len(head) - 1) + b'"'
    assert len(line) == MAX_LINE
    [answer] = decode_all(line + b"\r\n")
    assert isinstance(answer, Var)
    # Split right before the LF: the CR alone must not make the line look too long yet.
    assert feed_in_chunks(line + b"\r\n", [MAX_LINE + 1]) == [answer]
    [too_long] = decode_all(b"x" + line + b"\n")
    assert isinstance(too_long, Malformed)
    assert too_long.reason == f"line longer than {MAX_LINE} bytes"
    assert len(too_long.line) <= 90


def test_overlong_line_is_reported_once_and_skipped_to_the_next_lf() -> None:
    decoder = ResponseDecoder(max_line=16)
    out: list[Response] = []
    for _ in range(1000):  # a peer that streams without ever sending LF
        out += decoder.feed(b"y" * 100)
        assert decoder.buffered <= 17
    assert len(out) == 1
    assert isinstance(out[0], Malformed)
    assert decoder.feed(b"still the long line\nOK\n") == [Ok()]


@given(st.lists(st.tuples(responses, st.booleans()), max_size=15), st.lists(st.integers(0)))
def test_answers_survive_encoding_and_any_split(
    items: list[tuple[Response, bool]], cuts: list[int]
) -> None:
    data = b"".join(
        encode_response(answer)[:-1] + (b"\r\n" if crlf else b"\n") for answer, crlf in items
    )
    assert feed_in_chunks(data, cuts) == [answer for answer, _ in items]


@given(st.binary(max_size=400), st.lists(st.integers(0), max_size=30), st.sampled_from([8, 64]))
def test_arbitrary_bytes_never_raise_and_decode_the_same_however_split(
    data: bytes, cuts: list[int], max_line: int
) -> None:
    assert feed_in_chunks(data, cuts, max_line) == decode_all(data, max_line)


@given(st.binary(max_size=400), st.lists(st.integers(0), max_size=30))
def test_line_splitter_gives_the_same_lines_however_split(data: bytes, cuts: list[int]) -> None:
    whole = LineSplitter(32).feed(data)
    splitter = LineSplitter(32)
    pieces: list[str | Malformed] = []
    for chunk in split(data, cuts):
        pieces += splitter.feed(chunk)
    assert pieces == whole


@given(st.text())
def test_decode_response_never_raises(line: str) -> None:
    assert isinstance(decode_response(line), Response)


@given(st.binary(max_size=3000), responses)
def test_decoder_recovers_after_garbage(garbage: bytes, answer: Response) -> None:
    decoder = ResponseDecoder()
    decoder.feed(garbage)
    assert decoder.feed(b"\n" + encode_response(answer))[-1] == answer


# --- requests ------------------------------------------------------------------------------


def test_request_encoders() -> None:
    assert encode_ver() == b"VER\n"
    assert encode_netver() == b"NETVER\n"
    assert encode_list_ups() == b"LIST UPS\n"
    assert encode_list_var("su700") == b"LIST VAR su700\n"
    assert encode_list_cmd("su700") == b"LIST CMD su700\n"
    assert encode_get_var("su700", "ups.status") == b"GET VAR su700 ups.status\n"
    assert encode_set_var("su700", "ups.id", 'My "UPS"') == b'SET VAR su700 ups.id "My \\"UPS\\""\n'
    assert encode_instcmd("su700", "test.panel.start") == b"INSTCMD su700 test.panel.start\n"
    assert encode_instcmd("su700", "load.off.delay", "120") == b"INSTCMD su700 load.off.delay 120\n"
    assert encode_username("takt") == b"USERNAME takt\n"
    assert encode_password("pa ss") == b'PASSWORD "pa ss"\n'
    assert encode_login("su700") == b"LOGIN su700\n"
    assert encode_logout() == b"LOGOUT\n"
    assert encode_rw("su700", "ups.id", "x") == b'RW su700 ups.id "x"\n'
    assert encode_line("GET", "UPSDESC", "") == b'GET UPSDESC ""\n'


@pytest.mark.parametrize(
    "call",
    [
        lambda: encode_get_var("my ups", "ups.status"),
        lambda: encode_get_var("ups1", 'ups."status'),
        lambda: encode_list_var(""),
        lambda: encode_set_var("ups1", "ups.id", "two\nlines"),
        lambda: encode_password("nul\x00"),
        lambda: encode_set_var("ups1", "ups.id", "x" * MAX_LINE),
        lambda: encode_response(Malformed(reason="x", line="y")),
    ],
)
def test_encoders_refuse_what_upsd_could_not_read(call: object) -> None:
    with pytest.raises(NutSyntaxError):
        call()  # type: ignore[operator]


def test_command_decoder_uppercases_the_verb_and_reports_garbage() -> None:
    decoder = CommandDecoder()
    assert decoder.feed(b'get VAR ups1 ups.status\r\nSET VAR u v "a b"\n\n"open\n') == [
        Request(verb="GET", args=("VAR", "ups1", "ups.status")),
        Request(verb="SET", args=("VAR", "u", "v", "a b")),
        Malformed(reason="unterminated quoted word", line='"open'),
    ]


# --- ups.status and readings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "online", "on_battery", "low_battery", "imminent"),
    [
        ("OL", True, False, False, False),
        ("OL CHRG", True, False, False, False),
        ("OB DISCHRG", False, True, False, False),
        ("OB DISCHRG LB", False, True, True, True),
        ("OL LB", True, False, True, False),
        ("OL FSD", True, False, False, True),
        ("", False, False, False, False),
    ],
)
def test_status_helpers(
    text: str, online: bool, on_battery: bool, low_battery: bool, imminent: bool
) -> None:
    status = parse_status(text)
    assert (status.online, status.on_battery, status.low_battery) == (
        online,
        on_battery,
        low_battery,
    )
    assert status.shutdown_imminent is imminent


def test_status_keeps_unknown_words_apart() -> None:
    assert parse_status("  OB  LB ALARM TEST ALARM ol") == UpsStatus(
        flags=frozenset({StatusFlag.OB, StatusFlag.LB, StatusFlag.OL}),
        unknown=("ALARM", "TEST"),
    )


def test_every_documented_flag_is_known() -> None:
    text = "OL OB LB HB RB CHRG DISCHRG BYPASS CAL OFF OVER TRIM BOOST FSD"
    status = parse_status(text)
    assert {flag.value for flag in status.flags} == set(text.split())
    assert status.unknown == ()


@given(st.text())
def test_status_parsing_never_raises(text: str) -> None:
    status = parse_status(text)
    assert set(status.unknown).isdisjoint(flag.value for flag in StatusFlag)


def test_reading_from_vars() -> None:
    raw = {
        "ups.status": "OB DISCHRG",
        "battery.charge": "87.5",
        "battery.runtime": "1234.6",
        "input.voltage": "0.0",
        "ups.load": "23",
        "ups.mfr": "APC",
    }
    reading = reading_from_vars(raw)
    assert reading.status is not None and reading.status.on_battery
    assert reading.battery_charge == 87.5
    assert reading.battery_runtime_s == 1235
    assert reading.input_voltage == 0.0
    assert reading.load == 23.0
    assert reading.problems == ()
    assert reading.raw == raw


def test_reading_counts_bad_numbers_as_problems() -> None:
    reading = reading_from_vars(
        {
            "battery.charge": "full",
            "battery.runtime": "-5",
            "input.voltage": "2,30",
            "ups.load": "1e3",
        }
    )
    assert reading.status is None
    assert reading.battery_charge is None
    assert reading.battery_runtime_s is None
    assert reading.input_voltage is None
    assert reading.load is None
    assert reading.problems == (
        "battery.charge: 'full' is not a number",
        "battery.runtime: '-5' is outside 0..inf",
        "input.voltage: '2,30' is not a number",
        "ups.load: '1e3' is not a number",
    )
    assert len(reading_from_vars({"battery.charge": "101"}).problems) == 1


def test_reading_of_a_ups_that_reports_little() -> None:
    reading = reading_from_vars({"ups.status": "OL"})
    assert reading.status is not None and reading.status.online
    assert (reading.battery_charge, reading.battery_runtime_s, reading.load) == (None, None, None)


@pytest.mark.parametrize("text", ["230", " 230.5 ", "-1", ".5", "5."])
def test_numbers_in_nut_format(text: str) -> None:
    assert parse_number(text) == float(text)


@pytest.mark.parametrize("text", ["", "nan", "inf", "0x10", "1e3", "1,5", "1_000", "\u0663"])
def test_numbers_not_in_nut_format(text: str) -> None:
    with pytest.raises(ValueError, match="not a number"):
        parse_number(text)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "ups.status",
                "battery.charge",
                "battery.runtime",
                "input.voltage",
                "ups.load",
                "other",
            ]
        ),
        st.text(),
    )
)
def test_reading_never_raises(raw: dict[str, str]) -> None:
    reading = reading_from_vars(raw)
    numeric = ["battery.charge", "battery.runtime", "input.voltage", "ups.load"]
    read = [reading.battery_charge, reading.battery_runtime_s, reading.input_voltage, reading.load]
    # Every numeric variable present is either read or reported, never silently dropped.
    for name, value in zip(numeric, read, strict=True):
        if name in raw:
            assert (value is not None) != any(p.startswith(f"{name}:") for p in reading.problems)
