"""Marking codes: GS1 validation per industry profile, the code statuses and their legal moves.

A marking code is read as raw text from a scanner. `validate` turns it into a `CodeValidation`:
parsed with biip (AIM symbology prefix, GS separators, GTIN/SSCC check digits), then checked
against the industry's profile (the Russian "Chestny ZNAK" layouts: which AIs are required,
how long each value and the whole code are). It never raises for what a scanner sends.

The normalized form, used for duplicate detection, is the identification code (КИ) alone:
`01` + GTIN-14 + `21` + serial, or `00` + SSCC for logistic units. The crypto tail (AI 91/92/93)
and anything else are left out on purpose: they verify a code but do not identify the item,
scanners differ in whether they pass them (and the GS before them) on, and the operator's own
system (GIS MT) identifies items by the КИ. GTIN and SSCC are fixed-width, so the form is
unambiguous; it is also what an operator reads on the label.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

import msgspec
from biip import ParseError
from biip.checksums import gs1_standard_check_digit
from biip.gs1_element_strings import GS1ElementString, GS1ElementStrings
from biip.gs1_messages import GS1Message
from biip.symbology import GS1Symbology, SymbologyIdentifier
from msgspec.structs import replace

__all__ = [
    "GS",
    "PROFILES",
    "TRANSITIONS",
    "CodeStatus",
    "CodeValidation",
    "IllegalTransition",
    "IndustryProfile",
    "can_transition",
    "check_transition",
    "industry_profile",
    "normalized_code",
    "transition_error",
    "validate",
]

GS = "\x1d"
"""ASCII group separator: what scanners send for FNC1 between variable-length fields."""

_SERIAL_AI = "21"
_MAX_SHOWN = 60


class IndustryProfile(msgspec.Struct, frozen=True, kw_only=True):
    """What a valid code looks like for one product group.

    value_lengths: allowed lengths of an AI's value (e.g. serial 21 -> (6,)); an AI not listed
    may have any length its GS1 format allows. code_length: length of the whole code in its
    canonical form (AIs and values, a GS after each variable-length value but the last, no
    AIM prefix), or None where optional AIs make it vary.
    """

    name: str
    description: str
    required_ais: tuple[str, ...]
    value_lengths: Mapping[str, tuple[int, ...]] = msgspec.field(default_factory=dict)
    code_length: int | None = None


# The Chestny ZNAK layouts as the operator publishes them (serial, then a 4-character crypto
# tail in AI 93, or a key id in 91 and a crypto code in 92). Check them against the current
# operator documents before a new product group goes live: the operator changes them.
PROFILES: Mapping[str, IndustryProfile] = {
    p.name: p
    for p in (
        IndustryProfile(
            name="dairy",
            description="dairy products: 01 GTIN, 21 serial (6), 93 crypto tail (4)",
            required_ais=("01", "21", "93"),
            value_lengths={"21": (6,), "93": (4,)},
            code_length=31,
        ),
        IndustryProfile(
            name="water",
            description="packaged water: 01 GTIN, 21 serial (13), 93 crypto tail (4)",
            required_ais=("01", "21", "93"),
            value_lengths={"21": (13,), "93": (4,)},
            code_length=38,
        ),
        IndustryProfile(
            name="beer",
            description="beer and low-alcohol drinks: 01 GTIN, 21 serial (7), 93 crypto tail (4)",
            required_ais=("01", "21", "93"),
            value_lengths={"21": (7,), "93": (4,)},
            code_length=32,
        ),
        IndustryProfile(
            name="tobacco",
            # A cigarette pack's own 29-character code carries no AIs and is not GS1; blocks
            # and larger units are, and are what a line aggregates.
            description="tobacco blocks: 01 GTIN, 21 serial (7), 8005 max retail price, 93 crypto",
            required_ais=("01", "21", "8005", "93"),
            value_lengths={"21": (7,), "93": (4,)},
        ),
        IndustryProfile(
            name="pharma",
            description="medicines: 01 GTIN, 21 serial (13), 91 key id (4), 92 crypto (44)",
            required_ais=("01", "21", "91", "92"),
            value_lengths={"21": (13,), "91": (4,), "92": (44,)},
        ),
        IndustryProfile(
            name="light_industry",
            description="shoes, apparel, tyres, perfume: 01 GTIN, 21 serial (13), 91 (4), 92",
            required_ais=("01", "21", "91", "92"),
            value_lengths={"21": (13,), "91": (4,), "92": (44, 88)},
        ),
        IndustryProfile(
            name="generic",
            description="any GS1 code with a GTIN and a serial number",
            required_ais=("01", "21"),
        ),
        IndustryProfile(
            name="logistics",
            description="transport units (boxes, pallets): 00 SSCC",
            required_ais=("00",),
        ),
    )
}

_ALIASES = {"milk": "dairy"}


def industry_profile(industry: str) -> IndustryProfile:
    """The profile for an industry name (`milk` is dairy, as seed 002 calls it).

    ValueError names the known industries: a wrong industry is a configuration mistake.
    """
    key = industry.strip().lower()
    profile = PROFILES.get(_ALIASES.get(key, key))
    if profile is None:
        known = ", ".join(sorted([*PROFILES, *_ALIASES]))
        raise ValueError(f"unknown industry {industry!r}; known: {known}")
    return profile


class CodeValidation(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of validating one scanned code; reason says why when ok is False.

    ais holds every element string's value by AI; canonical is the code as GS1 element strings
    with GS separators (what a printer prints back); normalized is the duplicate-detection key.
    The parsed fields are filled as far as parsing got, also when the code is not ok.
    """

    ok: bool
    reason: str | None = None
    industry: str
    symbology: str | None = None
    gtin: str | None = None
    serial: str | None = None
    sscc: str | None = None
    ais: dict[str, str] = msgspec.field(default_factory=dict)
    canonical: str | None = None
    normalized: str | None = None


def normalized_code(ais: Mapping[str, str]) -> str | None:
    """The duplicate-detection key of parsed AIs (see the module docstring), None without one."""
    gtin, serial, sscc = ais.get("01"), ais.get(_SERIAL_AI), ais.get("00")
    if gtin is not None and serial is not None:
        return f"01{gtin}21{serial}"
    if sscc is not None:
        return f"00{sscc}"
    return None


def validate(text: str, industry: str = "generic") -> CodeValidation:
    """Validate raw scanner text against an industry profile; never raises for any text.

    Accepts an AIM symbology prefix (`]d2`, `]C1`, `]Q3`, ...), GS separators, a leading GS
    (FNC1 in first position) and trailing CR/LF. Raises ValueError only for an unknown industry.
    """
    profile = industry_profile(industry)
    refused = CodeValidation(ok=False, industry=profile.name)
    body = text.strip("\r\n")
    if body.startswith("]"):
        try:
            ident = SymbologyIdentifier.extract(body)
        except (ParseError, IndexError, ValueError):
            return replace(refused, reason=f"unknown symbology identifier {_show(body[:4])}")
        refused = replace(refused, symbology=ident.value)
        if ident.gs1_symbology not in GS1Symbology.with_gs1_messages():
            return replace(
                refused,
                reason=f"symbology {ident.value} does not carry GS1 data "
                "(GS1 DataMatrix is ]d2, GS1-128 ]C1, GS1 QR ]Q3)",
            )
        body = body[len(ident) :]
    # FNC1 in first position reaches us as a GS from some scanners; it marks GS1, no data.
    body = body.strip("\r\n").lstrip(GS)
    if not body:
        return replace(refused, reason="empty code")
    bad = next((i for i, ch in enumerate(body) if not (" " < ch < "\x7f" or ch == GS)), None)
    if bad is not None:
        return replace(
            refused,
            reason=f"character {body[bad]!r} at position {bad + 1} is not allowed in a GS1 code",
        )
    had_separators = GS in body
    try:
        elements: GS1ElementStrings | None = _parse(body)
        error = ""
    except (ParseError, IndexError, ValueError) as exc:
        elements, error = None, str(exc)
    if not had_separators and (elements is None or not _has_required(elements, profile)):
        elements = _resplit(body, profile) or elements
    if elements is None:
        return replace(refused, reason=f"not a GS1 code: {_shorten(error)}")
    ais = {element.ai.ai: element.value for element in elements}
    parsed = replace(
        refused,
        gtin=ais.get("01"),
        serial=ais.get(_SERIAL_AI),
        sscc=ais.get("00"),
        ais=ais,
        canonical=GS1Message.from_element_strings(elements).value,
        normalized=normalized_code(ais),
    )
    reason = _problem(elements, parsed, profile, had_separators=had_separators)
    return replace(parsed, ok=reason is None, reason=reason)


def _parse(body: str) -> GS1ElementStrings:
    return GS1Message.parse(body).element_strings


def _has_required(elements: GS1ElementStrings, profile: IndustryProfile) -> bool:
    present = {element.ai.ai for element in elements}
    return all(ai in present for ai in profile.required_ais)


def _resplit(body: str, profile: IndustryProfile) -> GS1ElementStrings | None:
    """Parse a code whose scanner dropped the GS separators, where the profile allows it.

    Without a GS a variable-length value (the serial) swallows the AIs after it. Where the
    profile fixes that value's length the cut is known: take each element string with biip,
    cut such a value at its length, put the GS back and parse again. The result counts only
    if it has every required AI.
    """
    parts: list[str] = []
    rest = body
    try:
        while rest:
            element = GS1ElementString.extract(rest)
            lengths = profile.value_lengths.get(element.ai.ai, ())
            size = len(element)
            if element.ai.separator_required and len(lengths) == 1:
                size = min(size, len(element.ai.ai) + lengths[0])
            parts.append(rest[:size])
            rest = rest[size:]
        elements = _parse(GS.join(parts))
    except (ParseError, IndexError, ValueError):
        return None
    return elements if _has_required(elements, profile) else None


def _problem(
    elements: GS1ElementStrings,
    parsed: CodeValidation,
    profile: IndustryProfile,
    *,
    had_separators: bool,
) -> str | None:
    """The first thing wrong with a parsed code, in the order an operator should fix them."""
    name, ais = profile.name, parsed.ais
    for element in elements:
        if element.gtin_error is not None:
            return _digit_reason("GTIN", element.value, element.gtin_error)
        if element.sscc_error is not None:
            return _digit_reason("SSCC", element.value, element.sscc_error)
    seen = [element.ai.ai for element in elements]
    repeated = sorted({ai for ai in seen if seen.count(ai) > 1})
    if repeated:
        return f"AI {', '.join(repeated)} appears more than once"
    missing = [ai for ai in profile.required_ais if ai not in ais]
    if missing:
        label = "AI" if len(missing) == 1 else "AIs"
        reason = f"{label} {', '.join(missing)} missing for industry {name}"
        if not had_separators and any(e.ai.separator_required for e in elements):
            reason += " (the code has no GS separators: does the scanner send FNC1 as GS?)"
        return reason
    length = len(parsed.canonical or "")
    if profile.code_length is not None and length != profile.code_length:
        return f"code length {length} != {profile.code_length} for industry {name}"
    for ai, lengths in profile.value_lengths.items():
        value = ais.get(ai)
        if value is not None and len(value) not in lengths:
            wanted = " or ".join(str(n) for n in lengths)
            return f"AI {ai} has {len(value)} characters, industry {name} needs {wanted}"
    if parsed.normalized is None:
        return "code has neither a GTIN with a serial number nor an SSCC"
    return None


def _digit_reason(kind: str, value: str, biip_error: str) -> str:
    if value.isdigit() and "check digit" in biip_error:
        expected = gs1_standard_check_digit(value[:-1])
        return f"check digit of {kind} {value[:-1]} {value[-1]} is wrong (expected {expected})"
    return f"{kind} {value} is not valid: {biip_error}"


def _shorten(message: str) -> str:
    return message if len(message) <= 2 * _MAX_SHOWN else message[: 2 * _MAX_SHOWN] + "..."


def _show(value: str) -> str:
    return repr(value if len(value) <= _MAX_SHOWN else value[:_MAX_SHOWN] + "...")


class CodeStatus(IntEnum):
    """A code's status, numbered as seed 002 numbers bottle statuses."""

    CREATED = 0
    IN_BATCH = 1
    SENT = 2
    SYNCED = 3
    REJECTED = 4
    DELETED = 5

    @property
    def label(self) -> str:
        """The status as people read it: `In Batch`."""
        return self.name.replace("_", " ").title()


_S = CodeStatus

TRANSITIONS: Mapping[CodeStatus, frozenset[CodeStatus]] = {
    _S.CREATED: frozenset({_S.IN_BATCH, _S.SENT, _S.REJECTED, _S.DELETED}),
    _S.IN_BATCH: frozenset({_S.CREATED, _S.SENT, _S.REJECTED, _S.DELETED}),
    _S.SENT: frozenset({_S.SYNCED, _S.REJECTED}),
    _S.SYNCED: frozenset(),
    _S.REJECTED: frozenset({_S.DELETED}),
    _S.DELETED: frozenset(),
}
"""Every legal status change; anything else is refused.

| from \\ to | Created | In Batch | Sent | Synced | Rejected | Deleted |
| --- | --- | --- | --- | --- | --- | --- |
| Created  | -   | yes | yes | -   | yes | yes |
| In Batch | yes | -   | yes | -   | yes | yes |
| Sent     | -   | -   | -   | yes | yes | -   |
| Synced   | -   | -   | -   | -   | -   | -   |
| Rejected | -   | -   | -   | -   | -   | yes |
| Deleted  | -   | -   | -   | -   | -   | -   |

Why: In Batch -> Created is a code taken out of its batch (REMOVE scanner, a batch cancelled).
Created -> Sent is a line that reports single items without aggregating them. Sent -> Rejected
is the cloud refusing a code; Sent cannot be deleted, because the cloud already has it and would
then disagree with the station. Synced is final: the cloud owns the code from then on, and
changing it takes a document there, not a local status. Rejected codes may only be cleared
(Deleted); Deleted is final. Staying in the same status is not a move and is refused too, so
that a repeated command is visible.
"""


class IllegalTransition(ValueError):
    """A status change that TRANSITIONS does not allow; the message says which and why."""


def can_transition(old: CodeStatus, new: CodeStatus) -> bool:
    """Whether a code may move from old to new."""
    return new in TRANSITIONS[old]


def transition_error(old: CodeStatus, new: CodeStatus) -> str | None:
    """Why old -> new is refused, or None when it is legal."""
    if can_transition(old, new):
        return None
    if old == new:
        return f"code is already {old.label}"
    if not TRANSITIONS[old]:
        return f"{old.label} -> {new.label} is not allowed: {old.label} is final"
    allowed = ", ".join(s.label for s in sorted(TRANSITIONS[old]))
    return f"{old.label} -> {new.label} is not allowed (from {old.label}: {allowed})"


def check_transition(old: CodeStatus, new: CodeStatus) -> None:
    """Raise IllegalTransition unless old -> new is legal."""
    reason = transition_error(old, new)
    if reason is not None:
        raise IllegalTransition(reason)
