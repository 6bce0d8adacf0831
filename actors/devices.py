"""What the devices supervisor runs for a station config: one child per device."""

from __future__ import annotations

import duckdb

from actors.gpio import GpioActor
from actors.plc import PlcActor
from actors.printer import PrinterActor
from actors.scanner import ScannerActor
from actors.supervisor import ChildSpec
from actors.wrench import WrenchActor
from controller.config import StationConfig
from state.connection import database_folder

__all__ = ["SECTION_CHILDREN", "device_specs", "gateway_specs", "inspector_spec", "section_specs",
           "sequencer_spec", "traceability_spec"]

# Which children a config section makes: (supervisor, child id prefix).
SECTION_CHILDREN = {"plcs": ("devices", "plc:"), "scanners": ("devices", "scanner:"),
                    "printers": ("devices", "printer:"), "wrenches": ("devices", "wrench:"),
                    "robots": ("devices", "robot:"), "cameras": ("devices", "camera:"),
                    "ups": ("devices", "ups"),
                    "gpio": ("devices", "gpio"), "traceability": ("root", "traceability"),
                    "inspector": ("root", "inspector"), "coaching": ("root", "sequencer"),
                    "gateways": ("root", "gateway:")}


def section_specs(config: StationConfig, section: str,
                  database: duckdb.DuckDBPyConnection) -> list[ChildSpec]:
    """The children of one section; printers, wrenches and robots keep rows in the station
    `database`."""
    if section == "plcs":
        # The key is the PLC's whole config: an edit restarts that PLC and no other.
        return [ChildSpec.of(PlcActor, f"plc:{plc.name}", plc, key=plc)
                for plc in config.plcs if plc.enabled]
    if section == "scanners":
        return [ChildSpec.of(ScannerActor, f"scanner:{s.name}", s, key=s)
                for s in config.scanners if s.enabled]
    if section == "printers":
        return [ChildSpec.of(PrinterActor, f"printer:{p.name}", p, database, key=p)
                for p in config.printers if p.enabled]
    if section == "wrenches":
        return [ChildSpec.of(WrenchActor, f"wrench:{w.name}", w, database, key=w)
                for w in config.wrenches if w.enabled]
    if section == "robots":
        robots = [r for r in config.robots if r.enabled]
        if not robots:
            return []
        from actors.robot import RobotActor, webhook_base_url  # httpx only where robots are

        server = config.server
        return [ChildSpec.of(RobotActor, f"robot:{r.name}", r, database,
                             webhook_base=(base := webhook_base_url(r, server.host, server.port)),
                             key=(r, base))
                for r in robots]
    if section == "cameras":
        cameras = [c for c in config.cameras if c.enabled]
        if not cameras:
            return []
        from actors.camera import CameraActor  # pylon only where cameras are
        from actors.camera_messages import UseCameraConfig
        from controller.camera_config import reopen_key

        # Relative image paths (the emulator's file, a folder source) are the data dir's.
        # A change of settings the camera takes live is told to it, not a reopen.
        data_dir = database_folder(database)
        return [ChildSpec.of(CameraActor, f"camera:{c.name}", c, data_dir=data_dir,
                             key=reopen_key(c), update=UseCameraConfig(c))
                for c in cameras]
    if section == "ups":
        ups = config.ups
        if ups is None or not ups.enabled:
            return []
        from actors.ups import UpsActor  # NUT only where a UPS is configured

        return [ChildSpec.of(UpsActor, "ups", ups, key=ups)]
    if section == "gpio":
        gpio = config.gpio
        if not (gpio.buttons or gpio.leds):
            return []
        return [ChildSpec.of(GpioActor, "gpio", gpio, key=gpio)]
    if section == "traceability":
        return [traceability_spec(config, database)]
    if section == "inspector":
        return [inspector_spec(config, database)] if config.inspector.enabled else []
    if section == "coaching":
        return [sequencer_spec(config, database)] if config.coaching.enabled else []
    if section == "gateways":
        return gateway_specs(config)
    raise ValueError(f"section {section!r} makes no devices")


def device_specs(config: StationConfig,
                 database: duckdb.DuckDBPyConnection) -> list[ChildSpec]:
    """The children of the devices supervisor."""
    return [spec for section, (supervisor, _) in SECTION_CHILDREN.items()
            if supervisor == "devices" for spec in section_specs(config, section, database)]


def traceability_spec(config: StationConfig, database: duckdb.DuckDBPyConnection) -> ChildSpec:
    """The traceability actor, a child of the root supervisor after the devices."""
    from actors.traceability import TraceActor

    return ChildSpec.of(TraceActor, "traceability", config.traceability, database,
                        station_id=config.station.id, key=(config.station.id,
                                                           config.traceability))


def inspector_spec(config: StationConfig, database: duckdb.DuckDBPyConnection) -> ChildSpec:
    """The station's inspector, a child of the root supervisor after the devices."""
    from actors.inspector import InspectorActor  # openvino only where inspection runs

    return ChildSpec.of(InspectorActor, "inspector", config.inspector, database,
                        station_id=config.station.id, key=(config.station.id, config.inspector))


def sequencer_spec(config: StationConfig, database: duckdb.DuckDBPyConnection) -> ChildSpec:
    """The station's sequencer, a child of the root supervisor after traceability."""
    from actors.sequencer import SequencerActor

    return ChildSpec.of(SequencerActor, "sequencer", config.coaching, database,
                        station_id=config.station.id, machine=config.station.name,
                        key=(config.station.id, config.coaching))


def gateway_specs(config: StationConfig) -> list[ChildSpec]:
    """Takt's own servers, children of the root supervisor after the devices."""
    specs = []
    modbus, opcua = config.gateways.modbus, config.gateways.opcua
    if modbus.enabled:
        from actors.gateway_modbus import ModbusGateway

        specs.append(ChildSpec.of(ModbusGateway, "gateway:modbus", station_id=config.station.id,
                                  host=modbus.host, port=modbus.port, unit=modbus.unit,
                                  key=(config.station.id, modbus)))
    if opcua.enabled:
        from actors.gateway_opcua import OpcuaGateway

        specs.append(ChildSpec.of(OpcuaGateway, "gateway:opcua", station_id=config.station.id,
                                  host=opcua.host, port=opcua.port, path=opcua.path,
                                  key=(config.station.id, opcua)))
    return specs
