"""The smart wrench part of the station config (seed 000 "Smart Wrench", "torque settings"):
up to 10 torque controllers, each with the parameter sets (psets) whose limits Takt knows.

Takt speaks Atlas Copco Open Protocol (docs/open-protocol.md), which most tightening
controllers copy; other protocols are named so a config asking for them gets a clear
refusal. Takt's pset limits are its own check of every result: a tightening the controller
calls OK but that lies outside them is flagged and counted NOK (actors/wrench.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta

from controller.config_check import Problems, array_rule, duplicate_names, table_rule
from controller.config_lines import join_key

__all__ = [
    "MAX_WRENCHES",
    "OPEN_PROTOCOL_PORT",
    "UNSUPPORTED_WRENCH_PROTOCOLS",
    "Angle",
    "PsetNumber",
    "TorqueNm",
    "TorqueSettings",
    "WrenchConfig",
    "WrenchManufacturer",
    "WrenchProtocol",
    "WrenchPset",
    "WrenchTorque",
    "check_tightening",
    "cnm",
    "pset_problems",
]

MAX_WRENCHES = 10
OPEN_PROTOCOL_PORT = 4545
# MID 0002 revisions Takt reads (drivers.openprotocol.mids.START_ACK_REVISIONS); repeated here
# because controller/ imports nothing of drivers/.
_MAX_REVISION = 3
# Torques travel in hundredths of N·m in six digits (MID 0061), so 9999.99 N·m at most.
_MAX_TORQUE_NM = 9999.99
_MAX_ANGLE = 99_999

TorqueNm = Annotated[float, Meta(ge=0, le=_MAX_TORQUE_NM)]
Angle = Annotated[int, Meta(ge=0, le=_MAX_ANGLE)]
PsetNumber = Annotated[int, Meta(ge=0, le=999)]


class WrenchProtocol(StrEnum):
    OPEN_PROTOCOL = "OPEN_PROTOCOL"
    PFCS = "PFCS"
    TOOLSNET = "TOOLSNET"


# Named so a config that asks for them gets a clear refusal, not "invalid value".
UNSUPPORTED_WRENCH_PROTOCOLS = frozenset({WrenchProtocol.PFCS, WrenchProtocol.TOOLSNET})


class WrenchManufacturer(StrEnum):
    """Makers whose controllers speak Open Protocol; informational (shown, not acted on)."""

    ATLAS_COPCO = "ATLAS_COPCO"
    DESOUTTER = "DESOUTTER"
    STANLEY = "STANLEY"
    BOSCH_REXROTH = "BOSCH_REXROTH"
    CLECO = "CLECO"
    INGERSOLL_RAND = "INGERSOLL_RAND"
    GENERIC = "GENERIC"


class WrenchPset(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Takt's torque settings of one parameter set: what every result of it must meet.

    Torques in N·m (compared in hundredths, as the controller sends them), angles in degrees;
    an angle limit left out is not checked. batch_size > 0 makes selecting this pset expect
    that many OK tightenings (a sequence).
    """

    number: PsetNumber
    name: Annotated[str, Meta(max_length=64)] = ""
    torque_min_nm: TorqueNm
    torque_max_nm: TorqueNm
    torque_target_nm: TorqueNm
    angle_min: Angle | None = None
    angle_max: Angle | None = None
    batch_size: Annotated[int, Meta(ge=0, le=9999)] = 0


class WrenchConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]
    enabled: bool = True
    protocol: WrenchProtocol = WrenchProtocol.OPEN_PROTOCOL
    manufacturer: WrenchManufacturer = WrenchManufacturer.ATLAS_COPCO
    model: Annotated[str, Meta(max_length=64)] = ""  # e.g. "PF6000"; shown, not acted on
    host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = OPEN_PROTOCOL_PORT
    timeout_ms: Annotated[int, Meta(ge=50, le=30_000)] = 2000
    """How long the controller may take to answer one command."""
    keepalive_ms: Annotated[int, Meta(ge=50, le=60_000)] = 10_000
    """A keep-alive (MID 9999) goes out after this long without sending; twice this long
    without hearing from the controller and the link is declared lost."""
    revision: Annotated[int, Meta(ge=1, le=_MAX_REVISION)] = _MAX_REVISION
    """The highest MID 0002 revision to ask for; Takt steps down when the controller refuses."""
    default_pset: PsetNumber | None = None
    """Selected on every (re)connect unless a pset was selected over the API since."""
    psets: tuple[WrenchPset, ...] = ()

    def pset(self, number: int) -> WrenchPset | None:
        return next((p for p in self.psets if p.number == number), None)


def pset_problems(key: str, p: WrenchPset) -> Problems:
    """What is wrong with one pset's limits (also used for psets set over the API)."""
    if not p.torque_min_nm <= p.torque_target_nm <= p.torque_max_nm:
        yield (join_key(key, "torque_target_nm"),
               f"must lie within torque_min_nm ({p.torque_min_nm:g}) and torque_max_nm "
               f"({p.torque_max_nm:g}), which must be in order")
    if p.angle_min is not None and p.angle_max is not None and p.angle_min > p.angle_max:
        yield (join_key(key, "angle_min"),
               f"angle_min ({p.angle_min}) must not exceed angle_max ({p.angle_max})")


@table_rule(WrenchPset, "torque_min_nm", "torque_max_nm", "torque_target_nm", "angle_min",
            "angle_max")
def _limits_in_order(key: str, p: WrenchPset) -> Problems:
    yield from pset_problems(key, p)


@table_rule(WrenchConfig, "protocol")
def _protocol_supported(key: str, w: WrenchConfig) -> Problems:
    if w.protocol in UNSUPPORTED_WRENCH_PROTOCOLS:
        supported = ", ".join(p for p in WrenchProtocol if p not in UNSUPPORTED_WRENCH_PROTOCOLS)
        yield (join_key(key, "protocol"),
               f"protocol {w.protocol} is not supported by Takt (supported: {supported})")


@array_rule(WrenchPset, "number")
def _unique_pset_numbers(items: Sequence[tuple[str, WrenchPset]]) -> Problems:
    first: dict[int, str] = {}
    for key, p in items:
        if p is None:
            continue
        if p.number in first:
            yield (join_key(key, "number"),
                   f"duplicate pset number {p.number} (first used at {first[p.number]})")
        else:
            first[p.number] = key


@array_rule(WrenchConfig, "name", "host", "port")
def _distinct_wrenches(items: Sequence[tuple[str, WrenchConfig]]) -> Problems:
    items = [(key, w) for key, w in items if w is not None]
    yield from duplicate_names(items, "wrench")
    first: dict[tuple[str, int], str] = {}
    for key, w in items:
        address = (w.host.lower(), w.port)
        if address in first:
            # A controller takes one integrator session: two entries would fight over it,
            # each reconnecting when the other is refused.
            yield (join_key(key, "port"),
                   f"{w.host}:{w.port} is already the wrench at {first[address]}")
        else:
            first[address] = key
    if len(items) > MAX_WRENCHES:
        yield items[MAX_WRENCHES][0], f"at most {MAX_WRENCHES} wrenches per station"


def cnm(nm: float) -> int:
    """Hundredths of N·m of a torque in N·m, rounded half up as the controller rounds."""
    exact = Decimal(repr(nm)) if isinstance(nm, float) else Decimal(nm)
    return int((exact * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def check_tightening(pset: WrenchPset, torque_cnm: int, angle: int) -> str | None:
    """Why a result (torque in cN·m, angle in degrees) lies outside Takt's limits of its pset,
    or None when it lies within them. Compared in hundredths, as the controller sends them."""
    problems = []
    low, high = cnm(pset.torque_min_nm), cnm(pset.torque_max_nm)
    if torque_cnm < low:
        problems.append(f"torque {torque_cnm / 100:.2f} N·m is below {low / 100:.2f}")
    elif torque_cnm > high:
        problems.append(f"torque {torque_cnm / 100:.2f} N·m is above {high / 100:.2f}")
    if pset.angle_min is not None and angle < pset.angle_min:
        problems.append(f"angle {angle}° is below {pset.angle_min}°")
    elif pset.angle_max is not None and angle > pset.angle_max:
        problems.append(f"angle {angle}° is above {pset.angle_max}°")
    return "; ".join(problems) or None


class WrenchTorque(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The torque settings of one wrench, as PUT /api/v1/torque/settings takes them."""

    wrench: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]
    psets: tuple[WrenchPset, ...] = ()


class TorqueSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Torque settings of some of the station's wrenches (each replaces that wrench's)."""

    wrenches: tuple[WrenchTorque, ...]


@array_rule(WrenchTorque, "wrench")
def _one_entry_per_wrench(items: Sequence[tuple[str, WrenchTorque]]) -> Problems:
    first: dict[str, str] = {}
    for key, w in items:
        if w is None:
            continue
        if w.wrench in first:
            yield (join_key(key, "wrench"),
                   f"wrench {w.wrench!r} is given twice (first at {first[w.wrench]})")
        else:
            first[w.wrench] = key
