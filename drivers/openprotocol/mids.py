"""Typed Open Protocol messages: one struct per MID Takt uses, and their data fields.

`to_frame` / `encode_message` turn a message into a frame or bytes, `decode_message` turns
a received frame into a message (FrameError if its data does not decode). Torques travel as
integers in hundredths of N·m (cN·m): kept as int here so no float rounding creeps in;
`nm`, `nm_float` and `cnm_from_nm` convert.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import IntEnum
from typing import ClassVar, TypeAlias, TypeVar

import msgspec

from drivers.openprotocol.codec import Frame, FrameError, encode_frame

__all__ = [
    "BATCH_SIZE_DIGITS",
    "ERROR_NAMES",
    "START_ACK_REVISIONS",
    "BatchStatus",
    "CommandAccepted",
    "CommandError",
    "CommunicationStart",
    "CommunicationStartAck",
    "CommunicationStop",
    "DisableTool",
    "EnableTool",
    "ErrorCode",
    "KeepAlive",
    "LimitStatus",
    "Message",
    "Mid",
    "OtherMid",
    "ResultAck",
    "ResultSubscribe",
    "ResultUnsubscribe",
    "SelectParameterSet",
    "SetBatchSize",
    "TighteningResult",
    "batch_size_command",
    "cnm_from_nm",
    "decode_message",
    "encode_message",
    "error_name",
    "nm",
    "nm_float",
    "to_frame",
]


class Mid(IntEnum):
    """The MIDs Takt speaks."""

    COMMUNICATION_START = 1
    COMMUNICATION_START_ACK = 2
    COMMUNICATION_STOP = 3
    COMMAND_ERROR = 4
    COMMAND_ACCEPTED = 5
    SELECT_PARAMETER_SET = 18
    SET_BATCH_SIZE = 19
    DISABLE_TOOL = 42
    ENABLE_TOOL = 43
    RESULT_SUBSCRIBE = 60
    TIGHTENING_RESULT = 61
    RESULT_ACK = 62
    RESULT_UNSUBSCRIBE = 63
    KEEP_ALIVE = 9999


class ErrorCode(IntEnum):
    """MID 0004 error codes Takt and its simulator act on."""

    INVALID_DATA = 1
    PSET_NOT_PRESENT = 2
    PSET_CANNOT_BE_SET = 3
    RESULT_SUBSCRIPTION_EXISTS = 9
    RESULT_SUBSCRIPTION_MISSING = 10
    TOOL_INACCESSIBLE = 27
    CLIENT_ALREADY_CONNECTED = 96
    REVISION_UNSUPPORTED = 97
    INTERNAL_TIMEOUT = 98
    UNKNOWN_MID = 99


ERROR_NAMES: dict[int, str] = {
    0: "no error",
    1: "invalid data",
    2: "parameter set number not present",
    3: "parameter set cannot be set",
    4: "parameter set not running",
    6: "VIN upload subscription already exists",
    7: "VIN upload subscription does not exist",
    8: "VIN input source not granted",
    9: "last tightening result subscription already exists",
    10: "last tightening result subscription does not exist",
    11: "alarm subscription already exists",
    12: "alarm subscription does not exist",
    13: "parameter set selection subscription already exists",
    14: "parameter set selection subscription does not exist",
    15: "tightening id requested not found",
    16: "connection rejected, protocol busy",
    17: "job id not present",
    20: "job cannot be set",
    21: "job not running",
    25: "programming control not granted",
    27: "tool is inaccessible",
    28: "job abortion is in progress",
    59: "tool currently in use",
    71: "subscription already exists",
    72: "subscription does not exist",
    73: "subscribed MID unsupported",
    74: "subscribed MID revision unsupported",
    75: "requested MID unsupported",
    76: "requested MID revision unsupported",
    79: "command failed",
    92: "Open Protocol commands disabled",
    96: "client already connected",
    97: "MID revision unsupported",
    98: "controller internal request timeout",
    99: "unknown MID",
}

# MID 0002 revisions this module can read and write; a client asks the highest first.
START_ACK_REVISIONS = (1, 2, 3)
# Digits of the batch size per MID 0019 revision: revision 2 only widens the field.
BATCH_SIZE_DIGITS = {1: 2, 2: 4}


def error_name(code: int) -> str:
    """Readable name of a MID 0004 error code."""
    return ERROR_NAMES.get(code, f"unknown error {code:02d}")


class LimitStatus(IntEnum):
    """Torque or angle against its limits."""

    LOW = 0
    OK = 1
    HIGH = 2


class BatchStatus(IntEnum):
    """Batch state after a tightening."""

    NOK = 0
    OK = 1
    NOT_USED = 2


def nm(cnm: int) -> Decimal:
    """Exact N·m of a wire torque in hundredths (cN·m)."""
    return Decimal(cnm).scaleb(-2)


def nm_float(cnm: int) -> float:
    """N·m of a wire torque in hundredths, as the nearest float."""
    return cnm / 100


def cnm_from_nm(value: Decimal | float | int | str) -> int:
    """Hundredths of N·m of value (N·m), rounded half up; ValueError if not a number."""
    try:
        exact = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a torque in N·m") from None
    if not exact.is_finite():
        raise ValueError(f"{value!r} is not a finite torque")
    return int((exact * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --- messages --------------------------------------------------------------------------------


class CommunicationStart(msgspec.Struct, frozen=True, kw_only=True, tag="communication_start"):
    """MID 0001: start a session; revision is the MID 0002 revision wanted."""

    MID: ClassVar[int] = Mid.COMMUNICATION_START
    revision: int = 1


class CommunicationStartAck(
    msgspec.Struct, frozen=True, kw_only=True, tag="communication_start_ack"
):
    """MID 0002: the controller accepted the session. Fields past `revision` are not sent."""

    MID: ClassVar[int] = Mid.COMMUNICATION_START_ACK
    revision: int = 1
    cell_id: int
    channel_id: int
    controller_name: str
    supplier_code: str = ""  # revision 2+
    open_protocol_version: str = ""  # revision 3+
    controller_software_version: str = ""  # revision 3+
    tool_software_version: str = ""  # revision 3+


class CommunicationStop(msgspec.Struct, frozen=True, kw_only=True, tag="communication_stop"):
    """MID 0003: end the session."""

    MID: ClassVar[int] = Mid.COMMUNICATION_STOP


class CommandError(msgspec.Struct, frozen=True, kw_only=True, tag="command_error"):
    """MID 0004: the controller refused the command of MID `mid` with an error code."""

    MID: ClassVar[int] = Mid.COMMAND_ERROR
    mid: int
    error: int

    @property
    def error_name(self) -> str:
        """Readable name of the error code."""
        return error_name(self.error)


class CommandAccepted(msgspec.Struct, frozen=True, kw_only=True, tag="command_accepted"):
    """MID 0005: the controller accepted the command of MID `mid`."""

    MID: ClassVar[int] = Mid.COMMAND_ACCEPTED
    mid: int


class SelectParameterSet(msgspec.Struct, frozen=True, kw_only=True, tag="select_parameter_set"):
    """MID 0018: select parameter set (pset) number 0..999."""

    MID: ClassVar[int] = Mid.SELECT_PARAMETER_SET
    pset: int


class SetBatchSize(msgspec.Struct, frozen=True, kw_only=True, tag="set_batch_size"):
    """MID 0019: set the batch size of pset 0..999 at run time.

    Revision 1 carries 0..99, revision 2 0..9999 (`batch_size_command` picks the lowest).
    """

    MID: ClassVar[int] = Mid.SET_BATCH_SIZE
    pset: int
    batch_size: int
    revision: int = 1


def batch_size_command(pset: int, batch_size: int) -> SetBatchSize:
    """MID 0019 of the lowest revision that carries batch_size; ValueError if none does.

    The lowest: revision 1 is the older one, so more controllers take it.
    """
    for revision, digits in sorted(BATCH_SIZE_DIGITS.items()):
        if not isinstance(batch_size, bool) and 0 <= batch_size < 10**digits:
            return SetBatchSize(pset=pset, batch_size=batch_size, revision=revision)
    widest = max(BATCH_SIZE_DIGITS.values())
    raise ValueError(f"batch size {batch_size!r} does not fit {widest} digits")


class DisableTool(msgspec.Struct, frozen=True, kw_only=True, tag="disable_tool"):
    """MID 0042: the tool must not run."""

    MID: ClassVar[int] = Mid.DISABLE_TOOL


class EnableTool(msgspec.Struct, frozen=True, kw_only=True, tag="enable_tool"):
    """MID 0043: the tool may run."""

    MID: ClassVar[int] = Mid.ENABLE_TOOL


class ResultSubscribe(msgspec.Struct, frozen=True, kw_only=True, tag="result_subscribe"):
    """MID 0060: send every tightening result (as MID 0061 of `revision`).

    With no_ack the controller does not wait for a MID 0062 after each result.
    """

    MID: ClassVar[int] = Mid.RESULT_SUBSCRIBE
    revision: int = 1
    no_ack: bool = False


class TighteningResult(msgspec.Struct, frozen=True, kw_only=True, tag="tightening_result"):
    """MID 0061 revision 1: the last tightening. Torques in cN·m, angles in degrees."""

    MID: ClassVar[int] = Mid.TIGHTENING_RESULT
    cell_id: int
    channel_id: int
    controller_name: str
    vin: str
    job_id: int
    pset: int
    batch_size: int
    batch_counter: int
    tightening_ok: bool
    torque_status: LimitStatus
    angle_status: LimitStatus
    torque_min_cnm: int
    torque_max_cnm: int
    torque_target_cnm: int
    torque_cnm: int
    angle_min: int
    angle_max: int
    angle_target: int
    angle: int
    timestamp: datetime
    pset_changed_at: datetime
    batch_status: BatchStatus
    tightening_id: int

    @property
    def torque_nm(self) -> Decimal:
        """Final torque in N·m, exact."""
        return nm(self.torque_cnm)

    @property
    def torque_min_nm(self) -> Decimal:
        """Torque low limit in N·m, exact."""
        return nm(self.torque_min_cnm)

    @property
    def torque_max_nm(self) -> Decimal:
        """Torque high limit in N·m, exact."""
        return nm(self.torque_max_cnm)

    @property
    def torque_target_nm(self) -> Decimal:
        """Final torque target in N·m, exact."""
        return nm(self.torque_target_cnm)


class ResultAck(msgspec.Struct, frozen=True, kw_only=True, tag="result_ack"):
    """MID 0062: the integrator received a MID 0061."""

    MID: ClassVar[int] = Mid.RESULT_ACK


class ResultUnsubscribe(msgspec.Struct, frozen=True, kw_only=True, tag="result_unsubscribe"):
    """MID 0063: stop sending tightening results."""

    MID: ClassVar[int] = Mid.RESULT_UNSUBSCRIBE


class KeepAlive(msgspec.Struct, frozen=True, kw_only=True, tag="keep_alive"):
    """MID 9999: keep-alive; the controller mirrors it."""

    MID: ClassVar[int] = Mid.KEEP_ALIVE


class OtherMid(msgspec.Struct, frozen=True, kw_only=True, tag="other_mid"):
    """A MID this module does not type, kept as it came."""

    mid: int
    revision: int = 1
    data: bytes = b""


Message: TypeAlias = (
    CommunicationStart
    | CommunicationStartAck
    | CommunicationStop
    | CommandError
    | CommandAccepted
    | SelectParameterSet
    | SetBatchSize
    | DisableTool
    | EnableTool
    | ResultSubscribe
    | TighteningResult
    | ResultAck
    | ResultUnsubscribe
    | KeepAlive
    | OtherMid
)

# --- parameter fields ------------------------------------------------------------------------

# (parameter id, width) of each field, in wire order.
_START_ACK_FIELDS = {
    1: ((1, 4), (2, 2), (3, 25)),
    2: ((1, 4), (2, 2), (3, 25), (4, 3)),
    3: ((1, 4), (2, 2), (3, 25), (4, 3), (5, 19), (6, 19), (7, 19)),
}
_RESULT_FIELDS = (
    (1, 4), (2, 2), (3, 25), (4, 25), (5, 2), (6, 3), (7, 4), (8, 4), (9, 1), (10, 1),
    (11, 1), (12, 6), (13, 6), (14, 6), (15, 6), (16, 5), (17, 5), (18, 5), (19, 5),
    (20, 19), (21, 19), (22, 1), (23, 10),
)  # fmt: skip
_E = TypeVar("_E", bound=IntEnum)
_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2}):(\d{2}):(\d{2}):(\d{2})", re.ASCII)


def _number(value: int, width: int, what: str) -> str:
    if isinstance(value, bool) or not 0 <= value < 10**width:
        raise ValueError(f"{what} {value!r} does not fit {width} digits")
    return f"{value:0{width}d}"


def _text(value: str, width: int, what: str) -> str:
    # Printable ASCII only: the frame must stay ASCII and NUL-free.
    if len(value) > width or not all(" " <= char <= "~" for char in value):
        raise ValueError(f"{what} {value!r} is not printable ASCII of at most {width} chars")
    return value.ljust(width)


def _time(value: datetime, what: str) -> str:
    if value.microsecond:
        raise ValueError(f"{what} {value} has sub-second digits the wire cannot carry")
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}:"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}"
    )


def _fields(values: Sequence[str], spec: Sequence[tuple[int, int]]) -> bytes:
    return "".join(f"{pid:02d}{text}" for (pid, _), text in zip(spec, values, strict=True)).encode(
        "ascii"
    )


def _split(data: bytes, spec: Sequence[tuple[int, int]], mid: int) -> list[str]:
    text = data.decode("ascii")  # the frame decoder already checked ASCII
    values: list[str] = []
    at = 0
    for pid, width in spec:
        key = text[at : at + 2]
        if key != f"{pid:02d}":
            raise FrameError(f"MID {mid:04d}: parameter {pid:02d} expected at {at}, got {key!r}")
        value = text[at + 2 : at + 2 + width]
        if len(value) < width:
            raise FrameError(f"MID {mid:04d}: data ends inside parameter {pid:02d}")
        values.append(value)
        at += 2 + width
    if at != len(text):
        raise FrameError(f"MID {mid:04d}: {len(text) - at} bytes after the last parameter")
    return values


def _parse_int(text: str, what: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise FrameError(f"{what} {text!r} is not a number")
    return int(text)


def _parse_text(text: str) -> str:
    return text.rstrip(" ")


def _parse_time(text: str, what: str) -> datetime:
    match = _TIME.fullmatch(text)
    if match is None:
        raise FrameError(f"{what} {text!r} is not YYYY-MM-DD:HH:MM:SS")
    try:
        # Naive on purpose: the controller sends its local wall-clock time without a zone.
        return datetime(*(int(part) for part in match.groups()))
    except ValueError as exc:
        raise FrameError(f"{what} {text!r} is not a valid time: {exc}") from None


def _parse_flag(text: str, what: str) -> bool:
    if text not in ("0", "1"):
        raise FrameError(f"{what} {text!r} is not 0 or 1")
    return text == "1"


def _parse_enum(kind: type[_E], text: str, what: str) -> _E:
    try:
        return kind(_parse_int(text, what))
    except ValueError:
        raise FrameError(f"{what} {text!r} is not one of {[int(m) for m in kind]}") from None


# --- encode ----------------------------------------------------------------------------------


def to_frame(message: Message) -> Frame:
    """The frame carrying message; ValueError if a field does not fit its wire width."""
    if isinstance(message, OtherMid):
        return Frame(mid=message.mid, revision=message.revision, data=message.data)
    if isinstance(message, CommunicationStart):
        return Frame(mid=message.MID, revision=message.revision)
    if isinstance(message, ResultSubscribe):
        return Frame(mid=message.MID, revision=message.revision, no_ack=message.no_ack)
    if isinstance(message, CommunicationStartAck):
        return Frame(mid=message.MID, revision=message.revision, data=_start_ack_data(message))
    if isinstance(message, CommandError):
        data = _number(message.mid, 4, "MID") + _number(message.error, 2, "error code")
        return Frame(mid=message.MID, data=data.encode("ascii"))
    if isinstance(message, CommandAccepted):
        return Frame(mid=message.MID, data=_number(message.mid, 4, "MID").encode("ascii"))
    if isinstance(message, SelectParameterSet):
        return Frame(mid=message.MID, data=_number(message.pset, 3, "pset").encode("ascii"))
    if isinstance(message, SetBatchSize):
        return Frame(mid=message.MID, revision=message.revision, data=_batch_size_data(message))
    if isinstance(message, TighteningResult):
        return Frame(mid=message.MID, data=_result_data(message))
    return Frame(mid=message.MID)


def encode_message(message: Message) -> bytes:
    """Wire bytes of message; ValueError if a field does not fit its wire width."""
    return encode_frame(to_frame(message))


def _batch_size_data(command: SetBatchSize) -> bytes:
    digits = BATCH_SIZE_DIGITS.get(command.revision)
    if digits is None:
        raise ValueError(f"MID 0019 revision {command.revision} is not one of "
                         f"{tuple(BATCH_SIZE_DIGITS)}")
    # No parameter ids: the pset and the size follow each other, as in MID 0018.
    data = _number(command.pset, 3, "pset") + _number(command.batch_size, digits, "batch size")
    return data.encode("ascii")


def _start_ack_data(ack: CommunicationStartAck) -> bytes:
    spec = _START_ACK_FIELDS.get(ack.revision)
    if spec is None:
        raise ValueError(f"MID 0002 revision {ack.revision} is not one of {START_ACK_REVISIONS}")
    values = [
        _number(ack.cell_id, 4, "cell id"),
        _number(ack.channel_id, 2, "channel id"),
        _text(ack.controller_name, 25, "controller name"),
        _text(ack.supplier_code, 3, "supplier code"),
        _text(ack.open_protocol_version, 19, "Open Protocol version"),
        _text(ack.controller_software_version, 19, "controller software version"),
        _text(ack.tool_software_version, 19, "tool software version"),
    ]
    return _fields(values[: len(spec)], spec)


def _result_data(result: TighteningResult) -> bytes:
    values = [
        _number(result.cell_id, 4, "cell id"),
        _number(result.channel_id, 2, "channel id"),
        _text(result.controller_name, 25, "controller name"),
        _text(result.vin, 25, "VIN"),
        _number(result.job_id, 2, "job id"),
        _number(result.pset, 3, "pset"),
        _number(result.batch_size, 4, "batch size"),
        _number(result.batch_counter, 4, "batch counter"),
        "1" if result.tightening_ok else "0",
        _number(int(result.torque_status), 1, "torque status"),
        _number(int(result.angle_status), 1, "angle status"),
        _number(result.torque_min_cnm, 6, "torque min"),
        _number(result.torque_max_cnm, 6, "torque max"),
        _number(result.torque_target_cnm, 6, "torque target"),
        _number(result.torque_cnm, 6, "torque"),
        _number(result.angle_min, 5, "angle min"),
        _number(result.angle_max, 5, "angle max"),
        _number(result.angle_target, 5, "angle target"),
        _number(result.angle, 5, "angle"),
        _time(result.timestamp, "timestamp"),
        _time(result.pset_changed_at, "pset change time"),
        _number(int(result.batch_status), 1, "batch status"),
        _number(result.tightening_id, 10, "tightening id"),
    ]
    return _fields(values, _RESULT_FIELDS)


# --- decode ----------------------------------------------------------------------------------


def decode_message(frame: Frame) -> Message:
    """The message a frame carries; FrameError if its data does not decode.

    MIDs without a decoder here come back as `OtherMid`. Single-revision MIDs of a later
    revision are read by their revision-1 layout: later revisions only append fields.
    """
    decoder = _DECODERS.get(frame.mid)
    if decoder is None:
        return OtherMid(mid=frame.mid, revision=frame.revision, data=frame.data)
    return decoder(frame)


def _decode_start_ack(frame: Frame) -> Message:
    spec = _START_ACK_FIELDS.get(frame.revision)
    if spec is None:
        raise FrameError(f"MID 0002 revision {frame.revision} is not supported")
    values = _split(frame.data, spec, frame.mid) + [""] * (7 - len(spec))
    return CommunicationStartAck(
        revision=frame.revision,
        cell_id=_parse_int(values[0], "cell id"),
        channel_id=_parse_int(values[1], "channel id"),
        controller_name=_parse_text(values[2]),
        supplier_code=_parse_text(values[3]),
        open_protocol_version=_parse_text(values[4]),
        controller_software_version=_parse_text(values[5]),
        tool_software_version=_parse_text(values[6]),
    )


def _prefix(frame: Frame, width: int) -> str:
    text = frame.data.decode("ascii")
    # Revision 1 has exactly these bytes; later revisions append fields after them.
    if len(text) < width or (frame.revision == 1 and len(text) != width):
        raise FrameError(f"MID {frame.mid:04d}: {len(text)} data bytes, expected {width}")
    return text[:width]


def _decode_error(frame: Frame) -> Message:
    text = _prefix(frame, 6)
    return CommandError(mid=_parse_int(text[:4], "MID"), error=_parse_int(text[4:], "error code"))


def _decode_accepted(frame: Frame) -> Message:
    return CommandAccepted(mid=_parse_int(_prefix(frame, 4), "MID"))


def _decode_select(frame: Frame) -> Message:
    return SelectParameterSet(pset=_parse_int(_prefix(frame, 3), "pset"))


def _decode_batch_size(frame: Frame) -> Message:
    digits = BATCH_SIZE_DIGITS.get(frame.revision)
    if digits is None:
        # Revision 2 widened a field rather than appending one, so a later revision cannot be
        # read by an earlier layout.
        raise FrameError(f"MID 0019 revision {frame.revision} is not supported")
    text = frame.data.decode("ascii")
    if len(text) != 3 + digits:
        raise FrameError(f"MID 0019: {len(text)} data bytes, expected {3 + digits}")
    return SetBatchSize(
        pset=_parse_int(text[:3], "pset"),
        batch_size=_parse_int(text[3:], "batch size"),
        revision=frame.revision,
    )


def _decode_result(frame: Frame) -> Message:
    if frame.revision != 1:
        raise FrameError(f"MID 0061 revision {frame.revision} is not supported")
    v = _split(frame.data, _RESULT_FIELDS, frame.mid)
    return TighteningResult(
        cell_id=_parse_int(v[0], "cell id"),
        channel_id=_parse_int(v[1], "channel id"),
        controller_name=_parse_text(v[2]),
        vin=_parse_text(v[3]),
        job_id=_parse_int(v[4], "job id"),
        pset=_parse_int(v[5], "pset"),
        batch_size=_parse_int(v[6], "batch size"),
        batch_counter=_parse_int(v[7], "batch counter"),
        tightening_ok=_parse_flag(v[8], "tightening status"),
        torque_status=_parse_enum(LimitStatus, v[9], "torque status"),
        angle_status=_parse_enum(LimitStatus, v[10], "angle status"),
        torque_min_cnm=_parse_int(v[11], "torque min"),
        torque_max_cnm=_parse_int(v[12], "torque max"),
        torque_target_cnm=_parse_int(v[13], "torque target"),
        torque_cnm=_parse_int(v[14], "torque"),
        angle_min=_parse_int(v[15], "angle min"),
        angle_max=_parse_int(v[16], "angle max"),
        angle_target=_parse_int(v[17], "angle target"),
        angle=_parse_int(v[18], "angle"),
        timestamp=_parse_time(v[19], "timestamp"),
        pset_changed_at=_parse_time(v[20], "pset change time"),
        batch_status=_parse_enum(BatchStatus, v[21], "batch status"),
        tightening_id=_parse_int(v[22], "tightening id"),
    )


def _no_data(message: Message) -> Callable[[Frame], Message]:
    # Data-less MIDs: later revisions may carry data (a tightening id in 0062); not needed.
    return lambda _frame: message


_DECODERS: dict[int, Callable[[Frame], Message]] = {
    Mid.COMMUNICATION_START: lambda frame: CommunicationStart(revision=frame.revision),
    Mid.COMMUNICATION_START_ACK: _decode_start_ack,
    Mid.COMMUNICATION_STOP: _no_data(CommunicationStop()),
    Mid.COMMAND_ERROR: _decode_error,
    Mid.COMMAND_ACCEPTED: _decode_accepted,
    Mid.SELECT_PARAMETER_SET: _decode_select,
    Mid.SET_BATCH_SIZE: _decode_batch_size,
    Mid.DISABLE_TOOL: _no_data(DisableTool()),
    Mid.ENABLE_TOOL: _no_data(EnableTool()),
    Mid.RESULT_SUBSCRIBE: lambda frame: ResultSubscribe(
        revision=frame.revision, no_ack=frame.no_ack
    ),
    Mid.TIGHTENING_RESULT: _decode_result,
    Mid.RESULT_ACK: _no_data(ResultAck()),
    Mid.RESULT_UNSUBSCRIBE: _no_data(ResultUnsubscribe()),
    Mid.KEEP_ALIVE: _no_data(KeepAlive()),
}
