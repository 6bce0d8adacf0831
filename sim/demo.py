"""The demo station's simulated devices: a Modbus PLC and an OPC-UA PLC with live signals, a
code reader on a line that now and then reads a repeated or damaged code, a label printer, and
a torque controller whose operator tightens a bolt every few seconds (now and then NOK), and a
mobile robot running errands between the line's waypoints and its dock."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from controller.config import Direction, PlcConfig, Protocol, StationConfig, ValueType
from drivers.modbus.codec import RegisterSpec, make_spec
from sim.modbus_plc import ModbusPlcSimulator, Script

__all__ = ["demo_line_codes", "demo_plc_script", "start_demo_operator", "start_demo_plc",
           "start_demo_workers"]

_REPEAT_EVERY = 7  # every 7th item carries a code read before (a relabelled bottle)
_DAMAGE_EVERY = 11  # every 11th code is damaged (a wrong check digit)
_WRENCH_NOK_RATE = 0.1  # one tightening in ten is NOK, so the journal shows some


def _spec(b: Any) -> RegisterSpec:
    return make_spec(b.kind.value, b.address, b.type.value, count=b.count,
                     word_order=b.word_order.value, byte_order=b.byte_order.value, scale=b.scale)


def demo_plc_script(sim: ModbusPlcSimulator, plc: PlcConfig) -> Script:
    """Move every input binding: bools toggle, integers count, floats wander."""
    script = Script(sim)
    for i, b in enumerate(b for b in plc.bindings if b.direction is Direction.IN):
        spec = _spec(b)
        if b.type is ValueType.BOOL:
            script.toggle(spec, 2.0 + 0.7 * i)
        elif b.type is ValueType.FLOAT32:
            sim.set_value(spec, 24.0)
            script.wander(spec, 1.0, low=20.0, high=30.0, seed=i)
        elif b.type is not ValueType.STRING and b.scale == 1.0:
            script.count_up(spec, 1.0 + 0.5 * i)
    return script


def demo_line_codes(start: int) -> Iterator[bytes]:
    """What the demo line's reader sees: fresh codes from start, now and then a code read
    before or one with a damaged GTIN, so that the journal shows refusals too."""
    from sim.scanner import iter_demo_codes

    fresh = iter_demo_codes(start=start)
    seen: list[bytes] = []
    for n in itertools.count(1):
        if n % _REPEAT_EVERY == 0 and seen:
            yield seen[-3 if len(seen) >= 3 else 0]
            continue
        code = next(fresh)
        if n % _DAMAGE_EVERY == 0:
            # The last GTIN digit is its check digit: change it and the code is refused.
            digit = code[18:19]
            yield code[:18] + (b"0" if digit != b"0" else b"1") + code[19:]
            continue
        seen = [*seen[-9:], code]
        yield code


def start_demo_plc(config: StationConfig, data_dir: Path) -> list[Any]:
    """Start the simulators (and their scripts); returned in start order, to stop in reverse."""
    started: list[Any] = []
    try:
        _start_plcs(config, started)
        _start_line(config, started)
        _start_cell(config, started)
        if config.sim is not None and config.sim.camera:
            from sim.demo_vision import prepare_scene  # cv2 and the renderer only then

            scene = prepare_scene(config, data_dir)  # before the camera opens its image file
            if scene is not None:
                started.append(scene)
    except BaseException:
        for thing in reversed(started):
            thing.stop()
        raise
    return started


def _start_plcs(config: StationConfig, started: list[Any]) -> None:
    sim_config = config.sim
    assert sim_config is not None
    if sim_config.modbus_plc:
        sim = ModbusPlcSimulator(host="127.0.0.1", port=sim_config.modbus_plc_port)
        sim.start()
        started.append(sim)
        for plc in config.plcs:
            if (sim_config.demo_script and plc.protocol is Protocol.MODBUS_TCP
                    and plc.port == sim_config.modbus_plc_port
                    and plc.host in ("127.0.0.1", "localhost")):
                started.append(demo_plc_script(sim, plc).start())
                break
    if sim_config.opcua_plc:
        from sim.opcua_plc import OpcuaPlcSimulator, demo_script

        opcua = OpcuaPlcSimulator(host="127.0.0.1", port=sim_config.opcua_plc_port)
        opcua.start()
        started.append(opcua)
        if sim_config.demo_script:
            started.append(demo_script(opcua))


def _start_line(config: StationConfig, started: list[Any]) -> None:
    """The line's code reader and label printer, and the operator's hand scanner."""
    sim_config = config.sim
    assert sim_config is not None
    from sim.scanner import DemoEmitter, TcpScannerSimulator

    if sim_config.scanner:
        reader = TcpScannerSimulator(host="127.0.0.1", port=sim_config.scanner_port)
        reader.start()
        started.append(reader)
        if sim_config.demo_script:
            # Serials from the clock: codes of an earlier run are not repeated as new ones.
            emitter = DemoEmitter(reader.emit, demo_line_codes(int(time.time() * 10)),
                                  period_s=sim_config.scanner_period_s)
            emitter.start()
            started.append(emitter)
    if sim_config.printer:
        from sim.zpl_printer import ZplPrinterSimulator

        printer = ZplPrinterSimulator(host="127.0.0.1", port=sim_config.printer_port)
        printer.start()
        started.append(printer)
    if sim_config.hand_scanner:
        hand = TcpScannerSimulator(host="127.0.0.1", port=sim_config.hand_scanner_port)
        hand.start()
        started.append(hand)


def _start_cell(config: StationConfig, started: list[Any]) -> None:
    """The nutrunner's controller and the mobile robot."""
    sim_config = config.sim
    assert sim_config is not None
    if sim_config.wrench:
        from sim.openprotocol_controller import OpenProtocolControllerSim

        wrench = OpenProtocolControllerSim(
            host="127.0.0.1", port=sim_config.wrench_port, nok_rate=_WRENCH_NOK_RATE,
            seed=int(time.time()),
            # The virtual operator tightens when a step asks for it; without one, a bolt is
            # tightened now and then so the wrench shows results.
            auto_interval_s=(sim_config.wrench_period_s
                             if sim_config.demo_script and not sim_config.operator else None))
        wrench.start()
        started.append(wrench)
    if sim_config.robot:
        from sim.robot import RobotSim
        from sim.robot.errands import Errands

        robot = RobotSim(host="127.0.0.1", port=sim_config.robot_port, realtime=True)
        robot.start()
        started.append(robot)
        if sim_config.demo_script:
            started.append(Errands(robot.base_url).start())


def start_demo_workers(config: StationConfig, runtime: Any, database: Any,
                       simulators: list[Any], data_dir: Path) -> list[Any]:
    """Once the station runs: the demo's model trainer (when the camera is simulated) and the
    virtual operator."""
    workers: list[Any] = []
    sim_config = config.sim
    scene = None
    if sim_config is not None and sim_config.camera:
        from sim.demo_vision import DemoModel, SceneWriter

        scene = next((s for s in simulators if isinstance(s, SceneWriter)), None)
        if scene is not None and config.inspector.enabled:
            workers.append(DemoModel(runtime, data_dir).start())
    if sim_config is not None and sim_config.operator and config.coaching.enabled:
        workers.append(start_demo_operator(config, runtime, database, simulators, scene))
    return workers


def start_demo_operator(config: StationConfig, runtime: Any, database: Any,
                        simulators: list[Any], scene: Any | None = None) -> Any:
    """The virtual operator: installs the demo's assembly (once) and starts assembling it with
    the hand scanner and the nutrunner simulators, in front of the camera when there is one."""
    sim_config = config.sim
    assert sim_config is not None
    from sim.assemblies import install_demo
    from sim.openprotocol_controller import OpenProtocolControllerSim
    from sim.operator import VirtualOperator
    from sim.scanner import TcpScannerSimulator

    hand = next((s for s in simulators if isinstance(s, TcpScannerSimulator)
                 and s.port == sim_config.hand_scanner_port), None)
    if hand is None:
        raise ValueError("[sim] operator needs hand_scanner = true (its hand scanner)")
    wrench = next((s for s in simulators if isinstance(s, OpenProtocolControllerSim)), None)

    def installed() -> int:
        cursor = database.cursor()  # the operator's thread's own
        try:
            return install_demo(cursor, runtime.clock.now_us())
        finally:
            cursor.close()

    return VirtualOperator(runtime, installed, hand_scanner=hand, wrench=wrench, scene=scene,
                           pace=sim_config.operator_pace, seed=int(time.time())).start()
