"""The station configuration (TOML): its schema, how it is loaded, and the checks it must pass.

Every problem in a file is reported at once, each with its line and dotted key, so an
engineer fixes a config in one pass instead of one error per start attempt. The PLC
tables live in `controller.plc_config`; the checking machinery in `controller.config_check`.
"""

from __future__ import annotations

import importlib.resources
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from controller.camera_config import CameraConfig
from controller.coaching_config import CoachingConfig
from controller.config_check import (
    ConfigError,
    ConfigIssue,
    Problems,
    check_table,
    duplicate_names,
    table_rule,
)
from controller.config_lines import index_key, join_key, key_lines, line_of
from controller.inspector_config import InspectorConfig
from controller.plc_config import (
    IMPLEMENTED_PROTOCOLS,
    UNSUPPORTED_PROTOCOLS,
    BindingMode,
    DeadbandType,
    Direction,
    Endianness,
    HandshakeConfig,
    HandshakeRole,
    HeartbeatConfig,
    Parity,
    PlcConfig,
    Protocol,
    RegisterKind,
    SerialConfig,
    TagBinding,
    ValueType,
)
from controller.printer_config import PrinterConfig
from controller.robot_config import RobotConfig
from controller.scanner_config import ScannerConfig
from controller.trace_config import TraceabilityConfig
from controller.ups_config import UpsConfig
from controller.wrench_config import WrenchConfig

__all__ = [
    "IMPLEMENTED_PROTOCOLS",
    "UNSUPPORTED_PROTOCOLS",
    "BindingMode",
    "CoachingConfig",
    "ConfigError",
    "ConfigIssue",
    "DeadbandType",
    "Direction",
    "Endianness",
    "GatewaysConfig",
    "GpioConfig",
    "GpioPoint",
    "HandshakeConfig",
    "HandshakeRole",
    "HeartbeatConfig",
    "ModbusGatewayConfig",
    "OpcuaGatewayConfig",
    "Parity",
    "PlcConfig",
    "PrinterConfig",
    "Protocol",
    "RegisterKind",
    "RobotConfig",
    "ScannerConfig",
    "SerialConfig",
    "ServerConfig",
    "SimConfig",
    "StationConfig",
    "StationInfo",
    "StoreConfig",
    "SupervisionConfig",
    "TagBinding",
    "TraceabilityConfig",
    "UpsConfig",
    "ValueType",
    "WrenchConfig",
    "check_station",
    "embedded_demo_config_path",
    "load_config",
    "parse_config",
]

Name = Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]
Port = Annotated[int, Meta(ge=1, le=65535)]
# Bounded so that `inf` (valid TOML) cannot pass as a duration.
Seconds = Annotated[float, Meta(gt=0, le=86_400)]
Host = Annotated[str, Meta(min_length=1)]


class _Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config table: immutable, and a misspelt key is an error."""


class StationInfo(_Table):
    id: Name
    name: Annotated[str, Meta(min_length=1)]


class ServerConfig(_Table):
    host: Host = "127.0.0.1"
    port: Port = 8080
    cors_origins: tuple[str, ...] = ()


class StoreConfig(_Table):
    group_commit_max: Annotated[int, Meta(ge=1, le=100_000)] = 5000
    query_workers: Annotated[int, Meta(ge=1, le=16)] = 2


class SupervisionConfig(_Table):
    """Restart intensity and reconnect backoff of the devices supervisor."""

    max_restarts: Annotated[int, Meta(ge=1)] = 30
    within_s: Seconds = 60.0
    backoff_min_s: Seconds = 0.1
    backoff_max_s: Seconds = 5.0
    backoff_jitter: Annotated[float, Meta(ge=0, le=1)] = 0.2
    stable_s: Seconds = 30.0


class ModbusGatewayConfig(_Table):
    """Takt's own Modbus TCP server, from which a PLC reads station state (docs/plc-gateway.md)."""

    enabled: bool = False
    host: Host = "127.0.0.1"
    port: Port = 5020
    unit: Annotated[int, Meta(ge=0, le=247)] = 1


class OpcuaGatewayConfig(_Table):
    """Takt's own OPC-UA server with the station's nodes."""

    enabled: bool = False
    host: Host = "127.0.0.1"
    port: Port = 4840
    path: Annotated[str, Meta(pattern=r"^/[A-Za-z0-9_/-]*(?!\n)$")] = "/takt"


class GatewaysConfig(_Table):
    # Off unless configured: a gateway accepts writes from the network into the station.
    modbus: ModbusGatewayConfig = ModbusGatewayConfig()
    opcua: OpcuaGatewayConfig = OpcuaGatewayConfig()


class GpioPoint(_Table):
    """A button or LED: on a PLC's bool signal, or simulated when plc and signal are left out."""

    name: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]
    plc: Name | None = None
    signal: Annotated[str, Meta(min_length=1)] | None = None
    description: str = ""


class GpioConfig(_Table):
    buttons: tuple[GpioPoint, ...] = ()
    leds: tuple[GpioPoint, ...] = ()


class SimConfig(_Table):
    """Simulated devices that `takt run` starts in-process (the demo station)."""

    modbus_plc: bool = True
    modbus_plc_port: Port = 5021
    opcua_plc: bool = False
    opcua_plc_port: Port = 4841
    demo_script: bool = True
    scanner: bool = False  # a free-running TCP code reader reading demo codes
    scanner_port: Port = 5023
    scanner_period_s: Seconds = 2.0  # how often an item passes the reader
    printer: bool = False  # a ZPL label printer
    printer_port: Port = 9101
    wrench: bool = False  # an Open Protocol torque controller tightening now and then
    wrench_port: Port = 4545
    wrench_period_s: Seconds = 5.0  # how often the simulated operator tightens
    robot: bool = False  # a mobile robot controller (HTTP + WebSocket) with the demo map
    robot_port: Port = 8765
    hand_scanner: bool = False  # the station's hand scanner (a TCP reader the operator uses)
    hand_scanner_port: Port = 5024
    operator: bool = False  # a virtual operator who assembles the demo's contactor, now and
    # then making a mistake (needs the hand scanner, the wrench and the PLC simulators)
    operator_pace: Annotated[float, Meta(gt=0, le=10)] = 1.0  # < 1: a faster operator
    camera: bool = False  # the operator's work rendered into the emulated camera's image
    # file (the first [[cameras]] with emulation and a file image_path), and a demo model
    # trained and deployed on the inspector when it has none


class StationConfig(_Table):
    station: StationInfo
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    plcs: tuple[PlcConfig, ...] = ()
    scanners: tuple[ScannerConfig, ...] = ()
    printers: tuple[PrinterConfig, ...] = ()
    wrenches: tuple[WrenchConfig, ...] = ()
    robots: tuple[RobotConfig, ...] = ()
    cameras: tuple[CameraConfig, ...] = ()
    gateways: GatewaysConfig = GatewaysConfig()
    gpio: GpioConfig = GpioConfig()
    traceability: TraceabilityConfig = TraceabilityConfig()
    coaching: CoachingConfig = CoachingConfig()
    inspector: InspectorConfig = InspectorConfig()
    ups: UpsConfig | None = None  # the station's UPS, read over NUT (none when left out)
    # Absent means no simulators: a real station must not open a fake PLC by default.
    sim: SimConfig | None = None

    def plc(self, name: str) -> PlcConfig | None:
        return next((p for p in self.plcs if p.name == name), None)


def load_config(path: Path) -> StationConfig:
    """Read and check the station config at `path`."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError([_file_issue(path, f"cannot read the file: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([_file_issue(path, f"not UTF-8 text: {exc.reason}")]) from exc
    return parse_config(text, str(path))


def parse_config(text: str, filename: str) -> StationConfig:
    """Check the TOML `text` (named `filename` in issues) and return the station config."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_issue(str(exc), text, filename)]) from None
    lines = key_lines(text)
    config, problems = check_table(raw, StationConfig)
    if problems or config is None:
        issues = [
            ConfigIssue(file=filename, line=line_of(lines, key), key=key, message=message)
            for key, message in problems
        ]
        raise ConfigError(sorted(issues, key=lambda issue: issue.line))
    return config


def check_station(raw: dict[str, Any], source: str) -> StationConfig:
    """Check a station config given as plain data (a config merged with API overrides)."""
    config, problems = check_table(raw, StationConfig)
    if problems or config is None:
        raise ConfigError([
            ConfigIssue(file=source, line=0, key=key, message=message) for key, message in problems
        ])
    return config


def embedded_demo_config_path() -> Path:
    """The demo station shipped in the `sim` package (`sim/stations/demo.toml`)."""
    resource = importlib.resources.files("sim") / "stations" / "demo.toml"
    if not isinstance(resource, Path):
        raise FileNotFoundError(f"the demo station is not a plain file here: {resource}")
    return resource


def _file_issue(path: Path, message: str) -> ConfigIssue:
    return ConfigIssue(file=str(path), line=0, key="<file>", message=message)


_TOML_POSITION = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)$")


def _syntax_issue(message: str, text: str, filename: str) -> ConfigIssue:
    match = _TOML_POSITION.search(message)
    if match is None:
        return ConfigIssue(file=filename, line=0, key="<syntax>", message=message)
    if match.group(1) is None:
        line, where = max(len(text.splitlines()), 1), "at end of file"
    else:
        line, where = int(match.group(1)), f"at column {match.group(2)}"
    return ConfigIssue(
        file=filename, line=line, key="<syntax>", message=f"{message[: match.start()]} ({where})"
    )


# ---- station-wide rules ------------------------------------------------------------------------


@table_rule(SupervisionConfig, "backoff_min_s", "backoff_max_s")
def _backoff_ordered(key: str, sup: SupervisionConfig) -> Problems:
    if sup.backoff_min_s > sup.backoff_max_s:
        yield (
            join_key(key, "backoff_min_s"),
            f"backoff_min_s ({sup.backoff_min_s:g}) must not exceed "
            f"backoff_max_s ({sup.backoff_max_s:g})",
        )


@table_rule(SupervisionConfig, "max_restarts", "within_s", "backoff_max_s")
def _intensity_outlasts_backoff(key: str, sup: SupervisionConfig) -> Problems:
    bound = sup.within_s / sup.backoff_max_s + 1
    if sup.max_restarts <= bound:
        yield (
            join_key(key, "max_restarts"),
            f"must be greater than within_s / backoff_max_s + 1 = {bound:g}: a device that "
            f"stays unreachable is restarted every backoff_max_s at most, so on its own it "
            f"would use up {sup.max_restarts} restarts within {sup.within_s:g} s and the "
            f"devices supervisor would give up on every device",
        )


@table_rule(GpioConfig, "buttons", "leds")
def _unique_gpio_names(key: str, gpio: GpioConfig) -> Problems:
    for field in ("buttons", "leds"):
        points = enumerate(getattr(gpio, field))
        items = [(index_key(join_key(key, field), i), p) for i, p in points]
        yield from duplicate_names(items, field[:-1])


@table_rule(StationConfig, "plcs", "gpio")
def _gpio_on_plc_signals(key: str, station: StationConfig) -> Problems:
    for field, direction in (("buttons", Direction.IN), ("leds", Direction.OUT)):
        for i, point in enumerate(getattr(station.gpio, field)):
            where = index_key(join_key("gpio", field), i)
            yield from _gpio_point(where, point, station, direction)


def _gpio_point(where: str, point: GpioPoint, station: StationConfig,
                direction: Direction) -> Problems:
    if (point.plc is None) != (point.signal is None):
        yield where, "give both plc and signal, or neither for a simulated point"
        return
    if point.plc is None or point.signal is None:
        return
    plc = station.plc(point.plc)
    if plc is None:
        yield join_key(where, "plc"), f"no PLC named {point.plc!r}"
        return
    if not plc.enabled:
        yield join_key(where, "plc"), f"PLC {point.plc!r} is disabled"
        return
    tag = plc.binding(point.signal)
    if tag is None:
        yield join_key(where, "signal"), f"PLC {point.plc!r} has no signal {point.signal!r}"
    elif tag.type is not ValueType.BOOL or tag.direction is not direction:
        yield (
            join_key(where, "signal"),
            f"{point.plc}.{point.signal} must be a bool with direction '{direction}'",
        )


def _bool_output(station: StationConfig, where: str, target: Any) -> Problems:
    """A PLC bool output named by `target` (plc, signal), if any."""
    if target is None:
        return
    plc = station.plc(target.plc)
    if plc is None or not plc.enabled:
        state = "no PLC" if plc is None else "a disabled PLC"
        yield join_key(where, "plc"), f"{state} named {target.plc!r}"
        return
    tag = plc.binding(target.signal)
    if tag is None or tag.type is not ValueType.BOOL or tag.direction is not Direction.OUT:
        yield (join_key(where, "signal"),
               f"{plc.name}.{target.signal} must be a bool signal with direction 'out'")


@table_rule(StationConfig, "plcs", "printers", "traceability", "coaching")
def _traceability_devices(key: str, station: StationConfig) -> Problems:
    trace = station.traceability
    yield from _bool_output(station, "traceability.eject", trace.eject)
    yield from _bool_output(station, "coaching.release", station.coaching.release)
    printers = {p.name: p for p in station.printers}
    for kind in ("batch", "package", "box"):
        rule = trace.labels.for_kind(kind)
        if rule is None:
            continue
        printer = printers.get(rule.printer)
        if printer is None or not printer.enabled:
            state = "no printer" if printer is None else "a disabled printer"
            yield f"traceability.labels.{kind}.printer", f"{state} named {rule.printer!r}"


@table_rule(StationConfig, "server", "gateways", "sim")
def _ports_distinct(key: str, station: StationConfig) -> Problems:
    used: dict[int, str] = {}
    candidates: list[tuple[str, int, bool]] = [
        ("server.port", station.server.port, True),
        ("gateways.modbus.port", station.gateways.modbus.port, station.gateways.modbus.enabled),
        ("gateways.opcua.port", station.gateways.opcua.port, station.gateways.opcua.enabled),
    ]
    if station.sim is not None:
        candidates += [
            ("sim.modbus_plc_port", station.sim.modbus_plc_port, station.sim.modbus_plc),
            ("sim.opcua_plc_port", station.sim.opcua_plc_port, station.sim.opcua_plc),
            ("sim.scanner_port", station.sim.scanner_port, station.sim.scanner),
            ("sim.printer_port", station.sim.printer_port, station.sim.printer),
            ("sim.wrench_port", station.sim.wrench_port, station.sim.wrench),
            ("sim.robot_port", station.sim.robot_port, station.sim.robot),
            ("sim.hand_scanner_port", station.sim.hand_scanner_port, station.sim.hand_scanner),
        ]
    for where, port, active in candidates:
        if not active:
            continue
        # Hosts are not compared: 0.0.0.0 and 127.0.0.1 collide on the same port.
        if (first := used.get(port)) is not None:
            yield where, f"port {port} is already used by {first}"
        else:
            used[port] = where


