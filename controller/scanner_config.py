"""The scanner part of the station config (seed 002 "Scanners"): up to 10 readers, each with
its transport, model and role."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta

from controller.config_check import Problems, array_rule, duplicate_names, table_rule
from controller.config_lines import join_key
from controller.plc_config import SerialConfig

__all__ = [
    "MAX_SCANNERS",
    "ScannerConfig",
    "ScannerModel",
    "ScannerRole",
    "ScannerTransport",
    "Terminator",
]

MAX_SCANNERS = 10


class ScannerTransport(StrEnum):
    TCP = "TCP"
    SERIAL = "SERIAL"
    MODBUS = "MODBUS"
    ETHERNET_IP = "ETHERNET_IP"
    USB_HID = "USB_HID"


# Named so a config that asks for them gets a clear refusal, not "invalid value".
UNSUPPORTED_TRANSPORTS = frozenset({ScannerTransport.ETHERNET_IP, ScannerTransport.USB_HID})


class ScannerModel(StrEnum):
    COGNEX_DATAMAN = "COGNEX_DATAMAN"
    HIKROBOT_ID = "HIKROBOT_ID"
    DATALOGIC_MATRIX = "DATALOGIC_MATRIX"
    DATALOGIC_HANDHELD = "DATALOGIC_HANDHELD"
    GENERIC = "GENERIC"


class ScannerRole(StrEnum):
    ADD = "ADD"
    REMOVE = "REMOVE"
    VERIFY_LOCAL_BUFFER = "VERIFY_LOCAL_BUFFER"
    REJECTION = "REJECTION"
    PACKAGE = "PACKAGE"
    BOX = "BOX"
    REJECTION_FEEDBACK = "REJECTION_FEEDBACK"
    COACHING = "COACHING"  # the station's hand scanner: its reads go to the sequencer only


class Terminator(StrEnum):
    CR = "cr"
    LF = "lf"
    CRLF = "crlf"


class ScannerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]
    transport: ScannerTransport = ScannerTransport.TCP
    model: ScannerModel = ScannerModel.GENERIC
    role: ScannerRole = ScannerRole.ADD
    enabled: bool = True
    host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 23  # DataMan's default result port
    unit: Annotated[int, Meta(ge=0, le=247)] = 1  # MODBUS
    serial: SerialConfig | None = None  # SERIAL
    terminator: Terminator = Terminator.CRLF
    stx_etx: bool = False
    no_read: str = "NOREAD"  # what the reader sends when a triggered read finds nothing
    triggered: bool = False  # a triggered reader reads only when Takt (or its PLC) asks
    timeout_ms: Annotated[int, Meta(ge=50, le=30_000)] = 1000
    poll_interval_ms: Annotated[int, Meta(ge=5, le=60_000)] = 50  # MODBUS result polling


@table_rule(ScannerConfig, "transport", "serial", "model", "triggered")
def _transport_settings(key: str, s: ScannerConfig) -> Problems:
    if s.transport in UNSUPPORTED_TRANSPORTS:
        supported = ", ".join(t for t in ScannerTransport if t not in UNSUPPORTED_TRANSPORTS)
        yield (join_key(key, "transport"),
               f"transport {s.transport} is not supported by Takt (supported: {supported})")
        return
    if s.transport is ScannerTransport.SERIAL and s.serial is None:
        yield join_key(key, "serial"), "SERIAL needs a [serial] table with the device path"
    if s.transport is not ScannerTransport.SERIAL and s.serial is not None:
        yield join_key(key, "serial"), f"serial applies to SERIAL scanners, not {s.transport}"
    if s.triggered and s.model is not ScannerModel.COGNEX_DATAMAN:
        yield (join_key(key, "triggered"),
               "Takt triggers readers over DMCC (COGNEX_DATAMAN); trigger others by their PLC "
               "input or their own settings")


@array_rule(ScannerConfig, "name")
def _unique_scanner_names(items: Sequence[tuple[str, ScannerConfig]]) -> Problems:
    yield from duplicate_names(items, "scanner")
    if len(items) > MAX_SCANNERS:
        yield items[MAX_SCANNERS][0], f"at most {MAX_SCANNERS} scanners per station"
