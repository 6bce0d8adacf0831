"""The demo station's simulated devices: a Modbus PLC and an OPC-UA PLC with live signals."""

from __future__ import annotations

from typing import Any

from controller.config import Direction, PlcConfig, Protocol, StationConfig, ValueType
from drivers.modbus.codec import RegisterSpec, make_spec
from sim.modbus_plc import ModbusPlcSimulator, Script

__all__ = ["demo_plc_script", "start_demo_plc"]


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


def start_demo_plc(config: StationConfig) -> list[Any]:
    """Start the simulators (and their scripts); returned in start order, to stop in reverse."""
    sim_config = config.sim
    assert sim_config is not None
    started: list[Any] = []
    try:
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
    except BaseException:
        for thing in reversed(started):
            thing.stop()
        raise
    return started
