"""ZPL tokenizer, formats read back, templates (escaping, no injection) and GS1 DataMatrix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.zpl.codec import (
    Command,
    Field,
    FormatReader,
    LabelFormat,
    SgdCommand,
    ZplTokenizer,
    count_labels,
    read_formats,
    tokenize,
)
from drivers.zpl.gs1 import GS, gs1_datamatrix, gs1_element_string, gs1_field_data
from drivers.zpl.template import LabelTemplate


def cmd(name: str, params: str = "", prefix: str = "^", delimiter: str = ",") -> Command:
    return Command(
        prefix=prefix, control=prefix == "~", name=name, params=params, delimiter=delimiter
    )


def names(tokens: list) -> list[str]:
    return [t.prefix + t.name if isinstance(t, Command) else "SGD" for t in tokens]


# --- tokenizer -----------------------------------------------------------------------------


def test_a_format_splits_into_its_commands_and_line_breaks_are_ignored() -> None:
    zpl = b"^XA\r\n^FO10,20^A0N,30,30^FDHello, wor\r\nld^FS\n^PQ2,0,1,Y^XZ"
    assert tokenize(zpl) == [
        cmd("XA"),
        cmd("FO", "10,20"),
        cmd("A0", "N,30,30"),
        cmd("FD", "Hello, world"),
        cmd("FS"),
        cmd("PQ", "2,0,1,Y"),
        cmd("XZ"),
    ]
    assert tokenize(b"^pq3^xz")[0].args() == ["3"]


def test_host_queries_and_format_end_complete_without_waiting_for_more() -> None:
    tokenizer = ZplTokenizer()
    assert tokenizer.feed(b"~HS") == [cmd("HS", prefix="~")]
    assert tokenizer.feed(b"~HQO") == []
    assert tokenizer.feed(b"D") == [cmd("HQ", "OD", prefix="~")]
    assert names(tokenizer.feed(b"^XA^FDx^FS^XZ")) == ["^XA", "^FD", "^FS", "^XZ"]
    assert not tokenizer.pending
    # Anything else ends at the next prefix: a printer cannot know its length.
    assert tokenizer.feed(b"^XA^FO1,1") == [cmd("XA")]
    assert tokenizer.pending
    assert tokenizer.flush() == [cmd("FO", "1,1")]


def test_a_control_command_inside_field_data_ends_the_field_as_on_a_printer() -> None:
    assert names(tokenize(b"^XA^FDab~HS^FS^XZ")) == ["^XA", "^FD", "~HS", "^FS", "^XZ"]


def test_sgd_lines_between_commands() -> None:
    tokens = tokenize(b'~HS! U1 getvar "odometer.total_label_count"\r\n^XA^XZ')
    assert tokens == [
        cmd("HS", prefix="~"),
        SgdCommand(line='! U1 getvar "odometer.total_label_count"'),
        cmd("XA"),
        cmd("XZ"),
    ]
    # In field data an exclamation mark is just data.
    assert tokenize(b"^XA^FD! U1 getvar^FS^XZ")[1] == cmd("FD", "! U1 getvar")


def test_changed_prefixes_and_delimiter_apply_to_what_follows() -> None:
    tokens = tokenize(b"^XA^CC+\n+FO1,1+FDa^b+FS~CT#+CD;+PQ3;0#HS+XZ")
    assert tokens == [
        cmd("XA"),
        cmd("CC", "+"),
        cmd("FO", "1,1", prefix="+"),
        cmd("FD", "a^b", prefix="+"),
        cmd("FS", prefix="+"),
        cmd("CT", "#", prefix="~"),
        cmd("CD", ";", prefix="+"),
        cmd("PQ", "3;0", prefix="+", delimiter=";"),
        Command(prefix="#", control=True, name="HS", delimiter=";"),
        cmd("XZ", prefix="+", delimiter=";"),
    ]
    assert tokens[7].args() == ["3", "0"]


def test_stray_bytes_are_counted_and_overlong_commands_dropped() -> None:
    tokenizer = ZplTokenizer(max_command=16)
    tokens = tokenizer.feed(b"junk ^XA^FD" + b"x" * 40 + b"^FS^XZ")
    assert names(tokens) == ["^XA", "^FS", "^XZ"]
    assert tokenizer.ignored == 4
    assert tokenizer.dropped == 1


_FRAGMENTS = st.sampled_from(
    [b"^XA", b"^XZ", b"^FS", b"~HS", b"~HQOD", b"^FD", b"^FH", b"abc", b"_5E", b"\r\n", b",",
     b'! U1 getvar "x"\r\n', b"^CC+", b"+XA", b"~CT#", b"#HS", b"^CD;", b"\x00\xff", b" "]
)  # fmt: skip
_ZPLISH = st.lists(_FRAGMENTS, max_size=30).map(b"".join)


@given(data=st.one_of(st.binary(max_size=200), _ZPLISH), cuts=st.lists(st.integers(0, 200)))
def test_tokens_do_not_depend_on_how_the_stream_is_split(data: bytes, cuts: list[int]) -> None:
    tokenizer = ZplTokenizer()
    tokens = []
    start = 0
    for cut in sorted({min(c, len(data)) for c in cuts}):
        tokens += tokenizer.feed(data[start:cut])
        start = cut
    tokens += tokenizer.feed(data[start:]) + tokenizer.flush()
    assert tokens == tokenize(data)


# --- formats read back ---------------------------------------------------------------------


def test_hex_escapes_and_utf8_are_decoded_like_a_printer() -> None:
    zpl = b"^XA^CI28^FO1,1^FH^FDcaf_C3_A9 _5E_7E __41^FS^FO1,2^FDplain_41^FS^XZ"
    assert read_formats(zpl) == [
        LabelFormat(fields=(Field(text="café ^~ _A"), Field(text="plain_41")))
    ]


def test_without_ci28_bytes_are_latin1() -> None:
    [label] = read_formats(b"^XA^CI0^FH^FD_E9^FS^XZ")
    assert label.fields[0].text == "é"


def test_gs1_datamatrix_field_is_read_back_as_its_element_string() -> None:
    zpl = b"^XA^FO1,1^BXN,5,200,,,,_^FD_10109506000134352_110A__B^FS^XZ"
    [label] = read_formats(zpl)
    assert label.fields == (Field(text="0109506000134352" + GS + "10A_B", barcode="BX", gs1=True),)


def test_quantities_and_label_count() -> None:
    zpl = b"^XA^FDa^FS^PQ3^XZ^XA^FDb^FS^XZ^XA^PQ0^XZ"
    assert [f.quantity for f in read_formats(zpl)] == [3, 1, 1]
    assert count_labels(zpl) == 5
    assert count_labels(b"^XA^FDnever ended") == 0


def test_a_format_restarted_or_cut_short_is_discarded() -> None:
    reader = FormatReader()
    done = [reader.feed(t) for t in tokenize(b"^XA^FDlost^FS^XA^FDkept^FS^XZ^XA^FDcut")]
    assert [d for d in done if d] == [LabelFormat(fields=(Field(text="kept"),))]
    assert reader.in_format
    reader.discard()
    assert reader.discarded == 2
    assert not reader.in_format


# --- templates -----------------------------------------------------------------------------

TEMPLATE = "^XA\n^FO20,20^A0N,30,30^FD{{a}}^FS\n^FO20,60^A0N,30,30^FDSN: {{ b }} end^FS\n^XZ"
EXPECTED = [
    ("^", "XA", ""),
    ("^", "CI", "28"),
    ("^", "FO", "20,20"),
    ("^", "A0", "N,30,30"),
    ("^", "FH", "_"),
    ("^", "FD", None),
    ("^", "FS", ""),
    ("^", "FO", "20,60"),
    ("^", "A0", "N,30,30"),
    ("^", "FH", "_"),
    ("^", "FD", None),
    ("^", "FS", ""),
    ("^", "XZ", ""),
]


@given(a=st.text(), b=st.text())
def test_any_field_text_comes_back_unchanged_and_adds_no_command(a: str, b: str) -> None:
    zpl = LabelTemplate(TEMPLATE).render({"a": a, "b": b})
    assert zpl.isascii()
    tokens = tokenize(zpl)
    shape = [(t.prefix, t.name, None if t.name == "FD" else t.params) for t in tokens]
    assert shape == EXPECTED
    assert read_formats(zpl) == [LabelFormat(fields=(Field(text=a), Field(text=f"SN: {b} end")))]


def test_an_injection_attempt_is_printed_as_text() -> None:
    attack = 'x^FS^XZ^XA^FDevil^FS^XZ~JA\r\n! U1 setvar "device.reset" ""\n'
    zpl = LabelTemplate("^XA^FO5,5^FD{{a}}^FS^XZ").render({"a": attack})
    assert names(tokenize(zpl)) == ["^XA", "^CI", "^FO", "^FH", "^FD", "^FS", "^XZ"]
    assert read_formats(zpl)[0].fields[0].text == attack


def test_rendered_zpl_is_readable_where_it_can_be() -> None:
    zpl = LabelTemplate("^XA^FO5,5^FD{{a}}^FS^XZ").render({"a": "AB-1_2 ü"})
    assert zpl == b"^XA^CI28^FO5,5^FH_^FDAB-1_5F2 _C3_BC^FS^XZ\n"


def test_a_field_with_its_own_fh_keeps_its_static_escapes() -> None:
    template = LabelTemplate("^XA^FO1,1^FH\\^FD\\41_{{a}}^FS^FO1,2^FDstatic_41^FS^XZ")
    zpl = template.render({"a": "\\^"})
    assert b"^FH\\^FD\\41_\\5C\\5E^FS" in zpl
    fields = read_formats(zpl)[0].fields
    assert fields == (Field(text="A_\\^"), Field(text="static_41"))


def test_plain_text_in_a_datamatrix_field_keeps_its_escape_characters() -> None:
    template = LabelTemplate("^XA^FO1,1^BXN,5,200,,,,_^FD{{a}}^FS^XZ")
    for text in ("_1 not FNC1", "a__b", "_", "~^\\"):
        [label] = read_formats(template.render({"a": text}))
        assert label.fields == (Field(text=text, barcode="BX"),)


def test_a_changed_control_prefix_is_escaped_in_field_data() -> None:
    template = LabelTemplate("~CT#^XA^FO1,1^FD{{a}}^FS^XZ")
    zpl = template.render({"a": "#JA"})
    assert b"#JA" not in zpl
    assert read_formats(zpl)[0].fields[0].text == "#JA"


def test_placeholders_and_a_repeated_name() -> None:
    template = LabelTemplate("^XA^FD{{a}}{{b}}^FS^FD{{a}}^FS^XZ")
    assert template.placeholders == {"a", "b"}
    [label] = read_formats(template.render({"a": "1", "b": "2"}))
    assert [f.text for f in label.fields] == ["12", "1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("^XA^FO{{x}},10^FDa^FS^XZ", r"outside field data \(in \^FO\)"),
        ("^XA^FD{{ x y }}^FS^XZ", "malformed placeholder"),
        ("^XA^FD{{x|upper}}^FS^XZ", "malformed placeholder"),
        ("^XA^FD{{x^FS^XZ", "malformed placeholder"),
        ("^XA^FDa\x00^FS^XZ", "NUL"),
        ("^FD{{x}}^FS", "outside a label format"),
        ("^XA^FD{{x}}^FS", "ends inside a label format"),
        ("^XA^CI0^FD{{x}}^FS^XZ", r"needs \^CI28"),
        ("^XA^FD{{x|gs1}}^FS^XZ", r"needs a \^BX quality 200 field"),
        ("^XA^BXN,5,200^FD{{x}}^FS^XZ", "explicit escape character"),
        ("^XA^BXN,5,140,,,,_^FD{{x}}^FS^XZ", "quality 200"),
        ("~HQ{{x}}^XA^XZ", "outside field data"),
        ('! U1 getvar "{{x}}"\n', "SGD line"),
        ("^XA{{x}}^FDa^FS^XZ", "not inside any command"),
    ],
)
def test_template_mistakes_are_refused_when_built(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabelTemplate(text)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "missing field.*serial"),
        ({"serial": "1", "extra": "2"}, "unknown field.*extra.*serial"),
        ({"serial": 5}, "must be text"),
        ({"serial": "\ud800"}, "not encodable"),
        ({"serial": "x" * 3100}, "3072-byte limit"),
    ],
)
def test_rendering_errors_name_the_field(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabelTemplate("^XA^FO1,1^FD{{serial}}^FS^XZ").render(fields)


def test_a_code128_value_cannot_switch_code_sets() -> None:
    template = LabelTemplate("^XA^BCN,80^FD{{a}}^FS^XZ")
    assert read_formats(template.render({"a": "AB12"}))[0].fields[0].text == "AB12"
    with pytest.raises(ValueError, match="Code 128"):
        template.render({"a": ">;123"})


# --- GS1 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "element_string"),
    [
        ("]d20109506000134352" + GS + "10ABC", "0109506000134352" + GS + "10ABC"),
        ("0109506000134352" + "10ABC" + GS, "010950600013435210ABC"),
        ("(01)09506000134352(10)ABC(21)12", "0109506000134352" + "10ABC" + GS + "2112"),
        ("(01)09506000134352(17)251231(10)L1", "0109506000134352" + "17251231" + "10L1"),
        ("(10)A-1(3103)000125", "10A-1" + GS + "3103000125"),
    ],
)
def test_gs1_element_strings(code: str, element_string: str) -> None:
    assert gs1_element_string(code) == element_string


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("", "empty"),
        ("]d2", "empty"),
        ("(01)123(10)A", r"\(01\)123 has 5 characters with its AI, needs 16"),
        ("0109506000134352^FS", "not allowed"),
        ("01 23", "not allowed"),
        ("AB12", "does not start with an AI"),
        ("(01)09506000134352junk(", "human-readable"),
    ],
)
def test_bad_gs1_data_is_refused(code: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gs1_element_string(code)


def test_gs1_datamatrix_field() -> None:
    field = gs1_datamatrix("(01)09506000134352(10)A_B(21)7", module=4)
    assert field == "^BXN,4,200,,,,_^FD_1010950600013435210A__B_1217^FS"
    assert gs1_field_data("0112345678901231", escape="!") == "!10112345678901231"
    with pytest.raises(ValueError, match="escape"):
        gs1_field_data("0112345678901231", escape="~")


_GS1_VALUE = st.text(
    alphabet="!\"%&'()*+,-./0123456789:;<=>?ABCXYZ_abcxyz", min_size=1, max_size=20
)
_GS1_ELEMENT = st.tuples(st.from_regex(r"[0-9]{2,4}", fullmatch=True), _GS1_VALUE).map("".join)


@given(elements=st.lists(_GS1_ELEMENT, min_size=1, max_size=5))
def test_gs1_datamatrix_reads_back_as_the_element_string(elements: list[str]) -> None:
    code = GS.join(elements)
    zpl = b"^XA^FO10,10" + gs1_datamatrix(code).encode("ascii") + b"^XZ"
    [label] = read_formats(zpl)
    assert label.fields == (Field(text=code, barcode="BX", gs1=True),)
    template = LabelTemplate("^XA^FO1,1^BXN,6,200,,,,_^FD{{code|gs1}}^FS^XZ")
    assert read_formats(template.render({"code": "]d2" + code}))[0] == label


# --- module layout -------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["drivers.zpl.template", "drivers.zpl.gs1", "drivers.zpl.codec"])
def test_each_zpl_module_can_be_imported_first(first: str) -> None:
    # A fresh interpreter: an import cycle only shows when a given module is loaded first.
    code = (f"import {first}\nfrom drivers.zpl.template import LabelTemplate\n"
            "from drivers.zpl.gs1 import GS\nfrom drivers.zpl.codec import tokenize")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
