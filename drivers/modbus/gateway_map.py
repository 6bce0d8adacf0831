"""The register map of Takt's own Modbus TCP server, as data, with its encoder and decoder.

Sans-I/O: a station state goes in as named values, table contents come out (and back).
Every multi-register value is big-endian: high word first, high byte first in each word.
Values are packed with `drivers.modbus.codec`; a 64-bit timestamp is two uint32 halves,
high half first, so the four words read as one big-endian uint64.

The state registers are served twice, as input registers (FC 4) and as holding registers
(FC 3) at the same addresses, because many PLC Modbus client blocks and HMI panels read
holding registers only; client writes to either are refused with "illegal data address".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

import msgspec

from drivers.errors import FrameError
from drivers.modbus.codec import RegisterKind, RegisterSpec, decode, encode, make_spec

__all__ = [
    "ASSEMBLY_CHARS",
    "COIL_POINTS",
    "DECISION_CODES",
    "DISCRETE_POINTS",
    "FLAG_BITS",
    "INPUT_SIGNALS",
    "NO_STEP",
    "POINTS",
    "REGISTER_COUNT",
    "REGISTER_POINTS",
    "STATUS_CODES",
    "STEP_STATE_CODES",
    "Access",
    "Point",
    "PointType",
    "RegisterWrite",
    "StateValues",
    "decode_registers",
    "encode_bits",
    "encode_registers",
    "render_markdown",
    "writes_for",
]

#: Named station values as the map sees them; keys are StationState field names.
StateValues = Mapping[str, Any]

DECISION_CODES: dict[str, int] = {"none": 0, "pass": 1, "fail": 2, "uncertain": 3}
STATUS_CODES: dict[str, int] = {"unknown": 0, "healthy": 1, "degraded": 2, "unhealthy": 3}
STEP_STATE_CODES: dict[str, int] = {
    "idle": 0, "active": 1, "complete": 2, "paused": 3, "interrupted": 4, "aborted": 5,
}
NO_STEP = 0xFFFF
ASSEMBLY_REGISTERS = 16
ASSEMBLY_CHARS = ASSEMBLY_REGISTERS * 2
FLAG_BITS: dict[str, int] = {"ReleaseAllowed": 0, "SystemHealthy": 1, "LifeBit": 2}
_U32 = 1 << 32
_U16_MAX = 0xFFFF


class PointType(StrEnum):
    BOOL = "bool"
    UINT16 = "uint16"
    ENUM = "enum"  # uint16 code
    UINT32 = "uint32"
    FLOAT32 = "float32"
    UINT64 = "uint64"
    STRING = "string"


class Access(StrEnum):
    READ = "R"
    READ_WRITE = "R/W"


class Point(msgspec.Struct, frozen=True, kw_only=True):
    """One named value in one Modbus table."""

    name: str
    table: RegisterKind
    address: int  # 0-based protocol address
    type: PointType
    count: int  # registers, or 1 for a bit
    access: Access
    description: str
    unit: str = ""
    sources: tuple[str, ...] = ()  # StationState fields it shows
    codes: dict[str, int] | None = None  # enum text -> code
    signal: str | None = None  # for writable inputs: the signal name Takt sees

    @property
    def reference(self) -> str:
        """The Modicon reference number(s), e.g. 30001 for input register 0, 30002-30003."""
        first = _reference(self.table, self.address)
        return first if self.count == 1 else f"{first}-{_reference(self.table, self.end - 1)}"

    @property
    def end(self) -> int:
        return self.address + self.count


def _reference(table: RegisterKind, address: int) -> str:
    prefix = {RegisterKind.COIL: 0, RegisterKind.DISCRETE_INPUT: 1,
              RegisterKind.INPUT_REGISTER: 3, RegisterKind.HOLDING_REGISTER: 4}[table]
    number = address + 1
    return f"{prefix}{number:04d}" if number <= 9999 else f"{prefix}{number:05d}"


def _reg(name: str, address: int, type_: PointType, description: str, *, unit: str = "",
         sources: tuple[str, ...], codes: dict[str, int] | None = None,
         count: int | None = None) -> Point:
    widths = {PointType.UINT16: 1, PointType.ENUM: 1, PointType.UINT32: 2,
              PointType.FLOAT32: 2, PointType.UINT64: 4}
    return Point(
        name=name, table=RegisterKind.INPUT_REGISTER, address=address, type=type_,
        count=count if count is not None else widths[type_], access=Access.READ,
        description=description, unit=unit, sources=sources, codes=codes,
    )


#: The state registers (input registers; mirrored at the same holding-register addresses).
REGISTER_POINTS: tuple[Point, ...] = (
    _reg("LastDecision", 0, PointType.ENUM, "decision of the last inspection",
         sources=("last_decision",), codes=DECISION_CODES),
    _reg("LastConfidence", 1, PointType.FLOAT32, "confidence of the last inspection, 0..1",
         sources=("last_confidence",)),
    _reg("ObjectsFound", 3, PointType.UINT16,
         "objects found by the last inspection (saturates at 65535)", sources=("objects_found",)),
    _reg("CycleTimeMs", 4, PointType.FLOAT32, "inspection time of the last inspection",
         unit="ms", sources=("cycle_time_ms",)),
    _reg("PassCount", 6, PointType.UINT32, "passes since Takt started (wraps at 2^32)",
         sources=("pass_count",)),
    _reg("FailCount", 8, PointType.UINT32, "fails since Takt started (wraps at 2^32)",
         sources=("fail_count",)),
    _reg("UncertainCount", 10, PointType.UINT32,
         "uncertain results since Takt started (wraps at 2^32)", sources=("uncertain_count",)),
    _reg("PassRate1h", 12, PointType.FLOAT32,
         "passes / all results over the last hour, 0 when there were none", unit="%",
         sources=("pass_rate_1h",)),
    _reg("LastInspectionTime", 14, PointType.UINT64,
         "event time of the last inspection, 0 before the first", unit="ms since 1970 UTC",
         sources=("last_inspection_us",)),
    _reg("SystemStatus", 18, PointType.ENUM, "overall health of the station",
         sources=("system_status",), codes=STATUS_CODES),
    _reg("CurrentStep", 19, PointType.UINT16, "0-based index of the current step, 65535 none",
         sources=("current_step",)),
    _reg("StepState", 20, PointType.ENUM, "state of the current step",
         sources=("step_state",), codes=STEP_STATE_CODES),
    _reg("Heartbeat", 21, PointType.UINT16,
         "+1 every heartbeat period (1 s by default) while Takt runs; 65535 -> 0",
         sources=("heartbeat",)),
    _reg("Flags", 22, PointType.UINT16,
         "bit 0 ReleaseAllowed, bit 1 SystemHealthy, bit 2 LifeBit (the discrete inputs)",
         sources=("release_allowed", "system_status", "heartbeat")),
    _reg("CurrentAssembly", 23, PointType.STRING,
         f"assembly being built, ASCII, NUL padded, {ASSEMBLY_CHARS} chars max; empty none",
         sources=("current_assembly",), count=ASSEMBLY_REGISTERS),
)
REGISTER_COUNT = REGISTER_POINTS[-1].end

DISCRETE_POINTS: tuple[Point, ...] = tuple(
    Point(name=name, table=RegisterKind.DISCRETE_INPUT, address=address, type=PointType.BOOL,
          count=1, access=Access.READ, description=description, sources=sources)
    for name, address, description, sources in (
        ("ReleaseAllowed", 0, "the part may be released to the line", ("release_allowed",)),
        ("SystemHealthy", 1, "SystemStatus is healthy", ("system_status",)),
        ("LifeBit", 2, "lowest bit of Heartbeat: toggles every heartbeat", ("heartbeat",)),
    )
)

COIL_POINTS: tuple[Point, ...] = tuple(
    Point(name=name, table=RegisterKind.COIL, address=address, type=PointType.BOOL, count=1,
          access=Access.READ_WRITE, description=description, signal=signal)
    for name, address, signal, description in (
        ("PartPresent", 0, "part_present", "PLC -> Takt: a part is in the station"),
        ("Request", 1, "request", "PLC -> Takt: request (Takt acts on each change)"),
        ("Reset", 2, "reset", "PLC -> Takt: reset (Takt acts on each change)"),
    )
)
#: Coil address -> the signal name a client write enters Takt as.
INPUT_SIGNALS: dict[int, str] = {p.address: p.signal for p in COIL_POINTS if p.signal}

_HOLDING_POINTS: tuple[Point, ...] = tuple(
    msgspec.structs.replace(p, table=RegisterKind.HOLDING_REGISTER) for p in REGISTER_POINTS
)
#: Every point of the map, table by table.
POINTS: tuple[Point, ...] = REGISTER_POINTS + _HOLDING_POINTS + DISCRETE_POINTS + COIL_POINTS


class RegisterWrite(msgspec.Struct, frozen=True, kw_only=True):
    """Contiguous values to store in one table, starting at address."""

    table: RegisterKind
    address: int
    values: list[int] | list[bool]


# --- encoding --------------------------------------------------------------------------


def _spec(point: Point, offset: int = 0, type_: str | None = None) -> RegisterSpec:
    kind = type_ or {PointType.ENUM: "uint16", PointType.UINT64: "uint32"}.get(
        point.type, point.type.value
    )
    count = point.count if point.type is PointType.STRING else None
    return make_spec(point.table, point.address + offset, kind, count=count)


def _ascii(text: str | None) -> str:
    # Anything a PLC string cannot hold becomes '?', so the length in chars stays honest.
    if not text:
        return ""
    clean = "".join(c if c.isascii() and c != "\x00" else "?" for c in text)
    return clean[:ASSEMBLY_CHARS]


def _flags(values: StateValues) -> int:
    bits = _bits(values)
    return sum(1 << FLAG_BITS[name] for name, on in bits.items() if on)


def _bits(values: StateValues) -> dict[str, bool]:
    return {
        "ReleaseAllowed": bool(values["release_allowed"]),
        "SystemHealthy": values["system_status"] == "healthy",
        "LifeBit": bool(values["heartbeat"] & 1),
    }


def _encode_point(point: Point, values: StateValues) -> list[int]:
    name = point.name
    if name == "LastInspectionTime":
        us = values["last_inspection_us"]
        ms = 0 if us is None else us // 1000
        return encode(_spec(point), ms >> 32) + encode(_spec(point, 2), ms & (_U32 - 1))
    if name == "Flags":
        return encode(_spec(point), _flags(values))
    if name == "CurrentStep":
        step = values["current_step"]
        return encode(_spec(point), NO_STEP if step is None else min(step, NO_STEP - 1))
    if name == "CurrentAssembly":
        return encode(_spec(point), _ascii(values["current_assembly"]))
    value = values[point.sources[0]]
    if point.codes is not None:
        return encode(_spec(point), point.codes[value])
    if point.type is PointType.UINT32:
        return encode(_spec(point), value % _U32)
    if point.type is PointType.UINT16:
        return encode(_spec(point), min(value, _U16_MAX))
    return encode(_spec(point), value)


def encode_registers(values: StateValues) -> list[int]:
    """The whole state register block (addresses 0..REGISTER_COUNT-1)."""
    words: list[int] = []
    for point in REGISTER_POINTS:
        words.extend(_encode_point(point, values))
    return words


def encode_bits(values: StateValues) -> list[bool]:
    """The discrete inputs, address 0 upwards."""
    bits = _bits(values)
    return [bits[p.name] for p in DISCRETE_POINTS]


def writes_for(values: StateValues, fields: Iterable[str] | None = None) -> list[RegisterWrite]:
    """The table writes that bring a server up to date after `fields` changed (None: all).

    Adjacent changed registers are merged into one write, so a multi-register value is
    always stored whole.
    """
    wanted = None if fields is None else set(fields)

    def hit(point: Point) -> bool:
        return wanted is None or not wanted.isdisjoint(point.sources)

    writes: list[RegisterWrite] = []
    start, words = -1, []
    for point in REGISTER_POINTS:
        if hit(point):
            if start < 0 or start + len(words) != point.address:
                if start >= 0:
                    writes.extend(_register_pair(start, words))
                start, words = point.address, []
            words.extend(_encode_point(point, values))
    if start >= 0:
        writes.extend(_register_pair(start, words))
    if any(hit(p) for p in DISCRETE_POINTS):
        writes.append(RegisterWrite(table=RegisterKind.DISCRETE_INPUT, address=0,
                                    values=encode_bits(values)))
    return writes


def _register_pair(address: int, words: list[int]) -> list[RegisterWrite]:
    return [RegisterWrite(table=table, address=address, values=list(words))
            for table in (RegisterKind.INPUT_REGISTER, RegisterKind.HOLDING_REGISTER)]


# --- decoding --------------------------------------------------------------------------


def decode_registers(words: Sequence[int]) -> dict[str, Any]:
    """StationState field values from the state register block, as a client reads it.

    Raises FrameError on words the map cannot produce (unknown enum code, bad string).
    """
    if len(words) != REGISTER_COUNT:
        raise FrameError(f"state block: got {len(words)} registers, want {REGISTER_COUNT}")
    out: dict[str, Any] = {}
    for point in REGISTER_POINTS:
        chunk = words[point.address : point.end]
        if point.type is PointType.UINT64:
            high = int(decode(_spec(point), chunk[:2]))
            low = int(decode(_spec(point, 2), chunk[2:]))
            ms = (high << 32) | low
            out["last_inspection_us"] = None if ms == 0 else ms * 1000
            continue
        value = decode(_spec(point), chunk)
        if point.name == "Flags":
            out["flags"] = value
        elif point.name == "CurrentStep":
            out["current_step"] = None if value == NO_STEP else value
        elif point.name == "CurrentAssembly":
            out["current_assembly"] = value or None
        elif point.codes is not None:
            names = {code: name for name, code in point.codes.items()}
            if value not in names:
                raise FrameError(f"{point.name}: unknown code {value}")
            out[point.sources[0]] = names[value]
        else:
            out[point.sources[0]] = value
    flags = out.pop("flags")
    out["release_allowed"] = bool(flags & (1 << FLAG_BITS["ReleaseAllowed"]))
    return out


# --- documentation ---------------------------------------------------------------------

def _type_text(point: Point) -> str:
    if point.type is PointType.STRING:
        return f"string, {point.count} regs"
    if point.type is PointType.UINT64:
        return "uint64, 4 regs"
    if point.type is PointType.ENUM:
        return "uint16 enum"
    if point.type in (PointType.UINT32, PointType.FLOAT32):
        return f"{point.type.value}, 2 regs"
    return point.type.value


def _order_text(point: Point) -> str:
    if point.type is PointType.STRING:
        return "1st char in high byte"
    if point.count > 1:
        return "high word first"
    return "-"


def _meaning(point: Point) -> str:
    if point.codes is None:
        return point.description
    codes = ", ".join(f"{code} {name}" for name, code in point.codes.items())
    return f"{point.description}: {codes}"


def render_markdown() -> str:
    """The register map as Markdown tables (the document quotes this verbatim)."""
    head = ("| address | reference | name | type | word order | unit | access | meaning |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |")
    sections: list[str] = []
    for title, points in (
        ("Input registers (FC 4), mirrored as holding registers (FC 3) at 40001..",
         REGISTER_POINTS),
        ("Discrete inputs (FC 2)", DISCRETE_POINTS),
        ("Coils (FC 1 read, FC 5 / FC 15 write)", COIL_POINTS),
    ):
        rows = []
        for p in points:
            where = str(p.address) if p.count == 1 else f"{p.address}-{p.end - 1}"
            ref = p.reference
            if p.table is RegisterKind.INPUT_REGISTER:
                mirror = msgspec.structs.replace(p, table=RegisterKind.HOLDING_REGISTER).reference
                ref = f"{ref} / {mirror}"
            rows.append(f"| {where} | {ref} | {p.name} | {_type_text(p)} | {_order_text(p)} "
                        f"| {p.unit or '-'} | {p.access.value} | {_meaning(p)} |")
        sections.append(f"#### {title}\n\n{head}\n" + "\n".join(rows))
    return "\n\n".join(sections) + "\n"
