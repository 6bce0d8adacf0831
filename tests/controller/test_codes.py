"""Marking-code validation per industry profile, and the code status transition table."""

from __future__ import annotations

import itertools

import pytest
from biip.checksums import gs1_standard_check_digit
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.codes import (
    GS,
    PROFILES,
    TRANSITIONS,
    CodeStatus,
    IllegalTransition,
    can_transition,
    check_transition,
    industry_profile,
    transition_error,
    validate,
)

# GS1 AI encodable character set 82, which serials and crypto tails are drawn from.
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


def gtin_of(payload: str) -> str:
    return payload + str(gs1_standard_check_digit(payload))


GTIN = gtin_of("0460000000001")  # 04600000000015
DAIRY = f"01{GTIN}21AbC123{GS}93XyZ9"
WATER = f"01{GTIN}21ABCDEFGHIJKLM{GS}93XyZ9"


def test_a_dairy_code_yields_its_parts_and_normalized_form() -> None:
    check = validate(DAIRY, "dairy")

    assert check.ok, check.reason
    assert check.reason is None
    assert check.gtin == GTIN
    assert check.serial == "AbC123"
    assert check.ais == {"01": GTIN, "21": "AbC123", "93": "XyZ9"}
    assert check.canonical == DAIRY
    assert check.normalized == f"01{GTIN}21AbC123"


@pytest.mark.parametrize(
    "scanned",
    [
        f"]d2{DAIRY}",
        f"]d2{DAIRY}\r",
        f"{DAIRY}\r\n",
        f"{GS}{DAIRY}",
        f"]d2{GS}{DAIRY}\r",
        f"01{GTIN}21AbC12393XyZ9",  # the scanner dropped the GS: the dairy serial is 6 long
        f"]Q3{DAIRY}",
        f"]C1{DAIRY}",
    ],
)
def test_every_way_a_scanner_sends_the_same_code_normalizes_alike(scanned: str) -> None:
    check = validate(scanned, "dairy")

    assert check.ok, check.reason
    assert check.normalized == f"01{GTIN}21AbC123"
    assert check.canonical == DAIRY


def test_the_symbology_prefix_is_reported() -> None:
    assert validate(f"]d2{DAIRY}", "dairy").symbology == "]d2"
    assert validate(DAIRY, "dairy").symbology is None


def test_milk_is_the_dairy_profile() -> None:
    check = validate(DAIRY, "milk")
    assert check.ok
    assert check.industry == "dairy"


def test_a_wrong_gtin_check_digit_is_named_with_the_expected_digit() -> None:
    check = validate(f"]d20109501101020918215Xk,q7{GS}93AbCd", "dairy")

    assert not check.ok
    assert check.reason == "check digit of GTIN 0950110102091 8 is wrong (expected 7)"
    # Parsing still got the parts, so an operator sees which code it was.
    assert check.gtin == "09501101020918"


def test_the_seed_example_identifier_has_a_wrong_check_digit() -> None:
    # Seed 002's sample "010460000000001721ABC123KRIPTO1234": 0460000000001 needs 5, not 7.
    check = validate("010460000000001721ABC123KRIPTO1234", "generic")
    assert check.reason == "check digit of GTIN 0460000000001 7 is wrong (expected 5)"


def test_a_missing_crypto_tail_is_named_for_the_industry() -> None:
    check = validate(f"01{GTIN}21AbC123", "dairy")

    assert not check.ok
    assert check.reason is not None
    assert check.reason.startswith("AI 93 missing for industry dairy")


def test_a_missing_tail_without_separators_hints_at_the_scanner_setup() -> None:
    # A 7-character serial on a dairy line: without a GS nothing tells where the serial ends.
    check = validate(f"01{GTIN}21AbC123493XyZ9", "dairy")

    assert not check.ok
    assert check.reason == (
        "AI 93 missing for industry dairy "
        "(the code has no GS separators: does the scanner send FNC1 as GS?)"
    )


def test_a_code_of_another_industry_fails_on_its_length() -> None:
    check = validate(DAIRY, "water")

    assert not check.ok
    assert check.reason == "code length 31 != 38 for industry water"
    assert validate(WATER, "water").ok


def test_a_value_of_the_wrong_length_is_named_where_the_total_may_vary() -> None:
    crypto = "A" * 44
    short_serial = f"01{GTIN}21ABCDEFGHIJKL{GS}91EE05{GS}92{crypto}"

    check = validate(short_serial, "pharma")

    assert check.reason == "AI 21 has 12 characters, industry pharma needs 13"


def test_pharma_without_separators_is_split_at_its_fixed_lengths() -> None:
    crypto = "Ab+/" * 11
    check = validate(f"]d201{GTIN}21ABCDEFGHIJKLM91EE0592{crypto}", "pharma")

    assert check.ok, check.reason
    assert check.ais == {"01": GTIN, "21": "ABCDEFGHIJKLM", "91": "EE05", "92": crypto}


def test_a_logistic_unit_is_identified_by_its_sscc() -> None:
    sscc = gtin_of("04600000000000001")  # an SSCC carries the same mod-10 check digit
    check = validate(f"]C100{sscc}", "logistics")

    assert check.ok, check.reason
    assert check.sscc == sscc
    assert check.normalized == f"00{sscc}"


def test_a_wrong_sscc_check_digit_is_named() -> None:
    sscc = gtin_of("04600000000000001")
    wrong = sscc[:-1] + str((int(sscc[-1]) + 1) % 10)

    check = validate(f"00{wrong}", "logistics")

    assert check.reason == (
        f"check digit of SSCC {sscc[:-1]} {wrong[-1]} is wrong (expected {sscc[-1]})"
    )


def test_a_generic_code_needs_a_serial_to_identify_one_item() -> None:
    assert validate(f"01{GTIN}", "generic").reason == "AI 21 missing for industry generic"
    assert validate(f"01{GTIN}21X", "generic").ok


@pytest.mark.parametrize(
    ("scanned", "reason"),
    [
        ("", "empty code"),
        ("\r\n", "empty code"),
        ("]d2", "empty code"),
        ("]", "unknown symbology identifier ']'"),
        ("]!1" + DAIRY, "unknown symbology identifier ']!10'"),
        (
            "]d1" + DAIRY,
            "symbology ]d1 does not carry GS1 data "
            "(GS1 DataMatrix is ]d2, GS1-128 ]C1, GS1 QR ]Q3)",
        ),
        (f"01{GTIN}21Ab\u00e9123", "character 'é' at position 21 is not allowed in a GS1 code"),
        (f"01{GTIN}21AbC123\t", "character '\\t' at position 25 is not allowed in a GS1 code"),
        (f"01{GTIN}21AbC{GS}21XyZ", "AI 21 appears more than once"),
    ],
)
def test_refusals_say_why(scanned: str, reason: str) -> None:
    check = validate(scanned, "dairy")

    assert not check.ok
    assert check.reason == reason


def test_text_that_is_not_gs1_is_refused_with_biips_reason() -> None:
    check = validate("hello", "generic")

    assert not check.ok
    assert check.reason is not None
    assert check.reason.startswith("not a GS1 code: ")
    assert check.normalized is None


def test_an_unknown_industry_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match=r"unknown industry 'cheese'; known: beer, dairy"):
        validate(DAIRY, "cheese")
    assert industry_profile(" Milk ").name == "dairy"


def test_the_crypto_tail_does_not_take_part_in_the_normalized_form() -> None:
    one = validate(f"01{GTIN}21AbC123{GS}93XyZ9", "dairy")
    other = validate(f"01{GTIN}21AbC123{GS}93QQQQ", "dairy")
    another_item = validate(f"01{GTIN}21AbC124{GS}93XyZ9", "dairy")

    assert one.normalized == other.normalized
    assert one.normalized != another_item.normalized


# --- properties ------------------------------------------------------------------------------

_SERIAL_LENGTHS = {"dairy": 6, "water": 13, "beer": 7}


@st.composite
def valid_codes(draw: st.DrawFn) -> tuple[str, str, str, str, str]:
    """(industry, scanned text, gtin, serial, crypto) for a Chestny ZNAK 01/21/93 code."""
    industry = draw(st.sampled_from(sorted(_SERIAL_LENGTHS)))
    gtin = gtin_of(draw(st.text("0123456789", min_size=13, max_size=13)))
    serial = draw(
        st.text(CSET82, min_size=_SERIAL_LENGTHS[industry], max_size=_SERIAL_LENGTHS[industry])
    )
    crypto = draw(st.text(CSET82, min_size=4, max_size=4))
    separator = draw(st.sampled_from([GS, ""]))
    prefix = draw(st.sampled_from(["", "]d2", "]Q3", GS, "]d2" + GS]))
    suffix = draw(st.sampled_from(["", "\r", "\r\n", "\n"]))
    return (
        industry,
        f"{prefix}01{gtin}21{serial}{separator}93{crypto}{suffix}",
        gtin,
        serial,
        crypto,
    )


@settings(max_examples=400, deadline=None)
@given(valid_codes())
def test_generated_valid_codes_pass(case: tuple[str, str, str, str, str]) -> None:
    industry, scanned, gtin, serial, crypto = case

    check = validate(scanned, industry)

    assert check.ok, check.reason
    assert (check.gtin, check.serial, check.ais["93"]) == (gtin, serial, crypto)
    assert check.normalized == f"01{gtin}21{serial}"
    assert len(check.canonical or "") == PROFILES[industry].code_length


@settings(max_examples=300, deadline=None)
@given(valid_codes(), st.integers(1, 9))
def test_a_changed_check_digit_fails_with_a_check_digit_reason(
    case: tuple[str, str, str, str, str], shift: int
) -> None:
    industry, scanned, gtin, _, _ = case
    wrong = str((int(gtin[-1]) + shift) % 10)
    tampered = scanned.replace(f"01{gtin}", f"01{gtin[:-1]}{wrong}", 1)

    check = validate(tampered, industry)

    assert not check.ok
    assert check.reason == (
        f"check digit of GTIN {gtin[:-1]} {wrong} is wrong (expected {gtin[-1]})"
    )


_GS1ISH = st.text(alphabet="0123456789]dCQ12" + GS + "\r\n" + CSET82[:20], max_size=80)


@settings(max_examples=1500, deadline=None)
@given(
    st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")), _GS1ISH),
    st.sampled_from(sorted(PROFILES)),
)
def test_validate_never_raises_and_always_explains_a_refusal(text: str, industry: str) -> None:
    check = validate(text, industry)

    assert check.ok == (check.reason is None)
    if check.ok:
        assert check.normalized is not None
        assert check.normalized.isascii()


# --- statuses ---------------------------------------------------------------------------------

S = CodeStatus
# Written out independently of TRANSITIONS: the moves the docstring table promises.
LEGAL = {
    (S.CREATED, S.IN_BATCH),
    (S.CREATED, S.SENT),
    (S.CREATED, S.REJECTED),
    (S.CREATED, S.DELETED),
    (S.IN_BATCH, S.CREATED),
    (S.IN_BATCH, S.SENT),
    (S.IN_BATCH, S.REJECTED),
    (S.IN_BATCH, S.DELETED),
    (S.SENT, S.SYNCED),
    (S.SENT, S.REJECTED),
    (S.REJECTED, S.DELETED),
}


def test_statuses_are_numbered_as_seed_002_numbers_them() -> None:
    assert [(s.value, s.label) for s in CodeStatus] == [
        (0, "Created"),
        (1, "In Batch"),
        (2, "Sent"),
        (3, "Synced"),
        (4, "Rejected"),
        (5, "Deleted"),
    ]
    assert set(TRANSITIONS) == set(CodeStatus)


@pytest.mark.parametrize(("old", "new"), list(itertools.product(CodeStatus, repeat=2)))
def test_every_status_pair_is_legal_exactly_when_the_table_says(
    old: CodeStatus, new: CodeStatus
) -> None:
    legal = (old, new) in LEGAL

    assert can_transition(old, new) is legal
    assert (transition_error(old, new) is None) is legal
    if legal:
        check_transition(old, new)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(old, new)


def test_refused_moves_say_why() -> None:
    assert transition_error(S.SYNCED, S.DELETED) == (
        "Synced -> Deleted is not allowed: Synced is final"
    )
    assert transition_error(S.REJECTED, S.REJECTED) == "code is already Rejected"
    assert transition_error(S.SENT, S.CREATED) == (
        "Sent -> Created is not allowed (from Sent: Synced, Rejected)"
    )
