"""Self-service catalogs (seed 002): the drivers a station can be configured with.

Plain data, served read-only at /api/v1/catalog/*, so a configuration UI offers exactly what
this version of Takt can run, with the fields each choice needs.
"""

from __future__ import annotations

from typing import Any

from controller.plc_config import IMPLEMENTED_PROTOCOLS, UNSUPPORTED_PROTOCOLS, Protocol
from controller.wrench_config import (
    OPEN_PROTOCOL_PORT,
    UNSUPPORTED_WRENCH_PROTOCOLS,
    WrenchManufacturer,
    WrenchProtocol,
)

__all__ = ["plc_protocols", "printers", "scanners", "wrenches"]

_PLC_FIELDS: dict[Protocol, dict[str, Any]] = {
    Protocol.MODBUS_TCP: {"link": ["host", "port", "unit", "timeout_ms", "poll_interval_ms"],
                          "binding": ["kind", "address", "type", "count", "word_order",
                                      "byte_order", "scale"],
                          "description": "Modbus TCP client, polled"},
    Protocol.MODBUS_RTU: {"link": ["serial.device", "serial.baudrate", "serial.parity",
                                   "serial.stopbits", "serial.bytesize", "unit", "timeout_ms",
                                   "poll_interval_ms"],
                          "binding": ["kind", "address", "type", "count", "word_order",
                                      "byte_order", "scale"],
                          "description": "Modbus RTU over a serial line, polled"},
    Protocol.OPC_UA: {"link": ["endpoint", "timeout_ms", "poll_interval_ms"],
                      "binding": ["node", "type", "mode", "publishing_interval_ms",
                                  "sampling_interval_ms", "queue_size", "deadband_type",
                                  "deadband", "scale"],
                      "description": "OPC-UA client with data-change subscriptions"},
    Protocol.TCP_SOCKET: {"link": ["host", "port", "timeout_ms", "poll_interval_ms"],
                          "binding": ["key", "type", "scale"],
                          "description": "name=value lines over TCP "
                                         "(docs/tcp-socket-protocol.md)"},
    Protocol.PROFINET: {"link": [], "binding": [],
                        "description": "not supported: use a Modbus or OPC-UA gateway"},
    Protocol.ETHERNET_IP: {"link": [], "binding": [],
                           "description": "not supported: use a Modbus or OPC-UA gateway"},
}


def plc_protocols() -> list[dict[str, Any]]:
    return [{"protocol": p.value, "supported": p in IMPLEMENTED_PROTOCOLS
             and p not in UNSUPPORTED_PROTOCOLS, **_PLC_FIELDS[p]} for p in Protocol]


def scanners() -> dict[str, Any]:
    """Scanner drivers of seed 002 (ETHERNET_IP and USB_HID are refused by the config)."""
    return {
        "transports": ["TCP", "SERIAL", "MODBUS"],
        "unsupported_transports": ["ETHERNET_IP", "USB_HID"],
        "models": ["COGNEX_DATAMAN", "HIKROBOT_ID", "DATALOGIC_MATRIX", "DATALOGIC_HANDHELD",
                   "GENERIC"],
        "roles": ["ADD", "REMOVE", "VERIFY_LOCAL_BUFFER", "REJECTION", "PACKAGE", "BOX",
                  "REJECTION_FEEDBACK"],
        "triggered_models": ["COGNEX_DATAMAN"],
        "available": True,
    }


def printers() -> dict[str, Any]:
    """Printer drivers of seed 002: Zebra ZPL over raw TCP 9100 (docs/zpl-templates.md)."""
    return {"models": [{"model": "ZEBRA_ZPL", "transport": "TCP", "default_port": 9100}],
            "available": True}


def wrenches() -> dict[str, Any]:
    """Smart wrench drivers of seed 000: Open Protocol over TCP 4545 (docs/open-protocol.md)."""
    return {
        "protocols": [{"protocol": p.value, "supported": p not in UNSUPPORTED_WRENCH_PROTOCOLS,
                       "default_port": OPEN_PROTOCOL_PORT
                       if p is WrenchProtocol.OPEN_PROTOCOL else None}
                      for p in WrenchProtocol],
        "manufacturers": [m.value for m in WrenchManufacturer],
        "available": True,
    }
