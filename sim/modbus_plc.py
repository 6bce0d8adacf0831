"""Modbus TCP PLC simulator: a pymodbus server on its own loop thread, with scriptable tags."""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import random
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from functools import partial
from typing import Any, Self, TypeVar, cast

from pymodbus.server import ModbusBaseServer, ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from drivers.modbus.codec import (
    DataType,
    RegisterKind,
    RegisterSpec,
    Value,
    decode,
    encode,
    encode_bit,
)
from drivers.modbus.codec import make_spec as _spec
from drivers.modbus.serving import settle, stop_tcp_server
from drivers.modbus.transport import quiet_pymodbus_logging
from sim.cli import serve_until_stopped, stop_on_signals

__all__ = [
    "DEMO_TAGS",
    "ModbusPlcSimulator",
    "ModbusPlcSimulatorBase",
    "Script",
    "demo_script",
    "main",
    "stop_on_signals",
]

# Function codes pymodbus's datastore maps to each table; the discrete-input and
# input-register codes also serve as "set" codes for the simulator's own writes.
_GET_CODE = {
    RegisterKind.COIL: 1,
    RegisterKind.DISCRETE_INPUT: 2,
    RegisterKind.HOLDING_REGISTER: 3,
    RegisterKind.INPUT_REGISTER: 4,
}
_SET_CODE = {**_GET_CODE, RegisterKind.COIL: 15, RegisterKind.HOLDING_REGISTER: 16}
_CALL_TIMEOUT_S = 5.0
_T = TypeVar("_T")

DEMO_TAGS: dict[str, RegisterSpec] = {
    "part_present": _spec("coil", 0, "bool"),
    "cycle_counter": _spec("holding_register", 0, "uint16"),
    "temperature_c": _spec("input_register", 10, "float32"),
}


class ModbusPlcSimulatorBase:
    """A Modbus slave's four tables of `size` entries, served by a pymodbus server on a thread.

    Subclasses pick the line (TCP, serial RTU) by providing `start()`, `_listen()` and, if
    needed, `_shutdown()`. pymodbus keeps bits in 16-bit words, so the coil and discrete-input
    tables hold `size` rounded up to a multiple of 16; reads past that end get an
    illegal-address exception.
    """

    def __init__(self, unit: int = 1, size: int = 1000) -> None:
        if not 1 <= size <= 0x10000:
            raise ValueError("size must be 1..65536")
        if not 0 <= unit <= 255:
            raise ValueError("unit must be 0..255")
        self._unit = unit
        self._size = size
        self._bit_size = min(-(-size // 16) * 16, 0x10000)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: ModbusBaseServer | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._scripts: list[Script] = []

    @property
    def running(self) -> bool:
        """True between a successful start() and stop()."""
        return self._server is not None

    def start(self) -> object:
        """Start serving; the tables start zeroed on every start."""
        raise NotImplementedError

    def _start_serving(self) -> None:
        if self._thread is not None:
            raise RuntimeError("simulator already running")
        quiet_pymodbus_logging()
        ready: Future[None] = Future()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(ready),), name="modbus-plc-sim", daemon=True
        )
        self._thread.start()
        try:
            ready.result(timeout=_CALL_TIMEOUT_S)
        except BaseException:
            self._thread.join(_CALL_TIMEOUT_S)
            self._thread = None
            raise

    def stop(self) -> None:
        """Stop scripts, close the server and every client connection, join the thread."""
        for script in list(self._scripts):
            script.stop()
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            loop.call_soon_threadsafe(stopping.set)
        thread.join(_CALL_TIMEOUT_S)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _serve(self, ready: Future[None]) -> None:
        try:
            server = await self._listen(SimDevice(id=self._unit, simdata=self._tables()))
        except Exception as exc:
            ready.set_exception(exc)
            return
        self._loop, self._server, self._stopping = (
            asyncio.get_running_loop(),
            server,
            asyncio.Event(),
        )
        ready.set_result(None)
        try:
            await self._stopping.wait()
        finally:
            self._server = None
            await self._shutdown(server)
            self._loop = self._stopping = None

    async def _listen(self, device: SimDevice) -> ModbusBaseServer:
        """Create the server for device and start serving in the background."""
        raise NotImplementedError

    async def _shutdown(self, server: ModbusBaseServer) -> None:
        await server.shutdown()
        await settle()

    def _tables(self) -> tuple[list[SimData], list[SimData], list[SimData], list[SimData]]:
        def bits() -> list[SimData]:
            return [SimData(0, count=self._bit_size, values=False, datatype=SimDataType.BITS)]

        def registers() -> list[SimData]:
            return [SimData(0, count=self._size, values=0, datatype=SimDataType.REGISTERS)]

        return bits(), bits(), registers(), registers()

    def _call(self, make: Callable[[ModbusBaseServer], Coroutine[Any, Any, _T]]) -> _T:
        # All bank access runs on the server's loop, serialised with client requests.
        loop, server = self._loop, self._server
        if loop is None or server is None:
            raise RuntimeError("simulator is not running")
        return asyncio.run_coroutine_threadsafe(make(server), loop).result(_CALL_TIMEOUT_S)

    def _check(self, kind: RegisterKind, address: int, count: int, bit: bool) -> None:
        if RegisterKind(kind).is_bit != bit:
            raise ValueError(f"{kind} is not a {'bit' if bit else 'register'} table")
        end = self._bit_size if bit else self._size
        if count < 1 or address < 0 or address + count > end:
            raise ValueError(f"{kind} {address}+{count} outside the bank (0..{end - 1})")

    def set_registers(self, kind: RegisterKind, address: int, words: Sequence[int]) -> None:
        """Set holding or input registers as if the PLC program wrote them."""
        self._check(kind, address, len(words), bit=False)
        if any(not 0 <= word <= 0xFFFF for word in words):
            raise ValueError("register words must be 0..65535")
        values = list(words)
        self._call(lambda s: s.async_setValues(self._unit, _SET_CODE[kind], address, values))

    def get_registers(self, kind: RegisterKind, address: int, count: int) -> list[int]:
        """Current words of holding or input registers, including client writes."""
        self._check(kind, address, count, bit=False)
        words = self._call(lambda s: s.async_getValues(self._unit, _GET_CODE[kind], address, count))
        return [int(word) for word in words]

    def set_bits(self, kind: RegisterKind, address: int, bits: Sequence[bool]) -> None:
        """Set coils or discrete inputs as if the PLC program wrote them."""
        self._check(kind, address, len(bits), bit=True)
        values = [bool(bit) for bit in bits]
        self._call(lambda s: s.async_setValues(self._unit, _SET_CODE[kind], address, values))

    def get_bits(self, kind: RegisterKind, address: int, count: int) -> list[bool]:
        """Current coils or discrete inputs, including client writes."""
        self._check(kind, address, count, bit=True)
        bits = self._call(lambda s: s.async_getValues(self._unit, _GET_CODE[kind], address, count))
        return [bool(bit) for bit in bits]

    def set_value(self, spec: RegisterSpec, value: Value) -> None:
        """Encode value with the codec and store it at spec."""
        if spec.kind.is_bit:
            self.set_bits(spec.kind, spec.address, [encode_bit(spec, value)])
        else:
            self.set_registers(spec.kind, spec.address, encode(spec, value))

    def get_value(self, spec: RegisterSpec) -> Value:
        """Decode the value stored at spec."""
        if spec.kind.is_bit:
            return decode(spec, self.get_bits(spec.kind, spec.address, spec.count))
        return decode(spec, self.get_registers(spec.kind, spec.address, spec.count))

    def _attach(self, script: Script) -> None:
        self._scripts.append(script)

    def _detach(self, script: Script) -> None:
        if script in self._scripts:
            self._scripts.remove(script)


class ModbusPlcSimulator(ModbusPlcSimulatorBase):
    """A Modbus TCP slave with four tables of `size` entries, shared by clients and tests."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, unit: int = 1, size: int = 1000
    ) -> None:
        super().__init__(unit, size)
        self._host = host
        self._port = port

    @property
    def port(self) -> int:
        """The bound port (the requested one until start() has bound a free port)."""
        return self._port

    def start(self) -> int:
        """Listen and return the bound port; after stop(), restarts on the same port, zeroed."""
        self._start_serving()
        return self._port

    async def _listen(self, device: SimDevice) -> ModbusBaseServer:
        server = ModbusTcpServer(device, address=(self._host, self._port))
        try:
            # Binding here (not picking a free port first) keeps port=0 race-free.
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus's word for "listen failed"
            raise OSError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
        self._port = cast(asyncio.Server, server.transport).sockets[0].getsockname()[1]
        return server

    async def _shutdown(self, server: ModbusBaseServer) -> None:
        await stop_tcp_server(server)


class Script:
    """Timed changes to a simulator's tags, run by one background thread."""

    def __init__(self, sim: ModbusPlcSimulatorBase) -> None:
        self._sim = sim
        self._rules: list[tuple[float, Callable[[ModbusPlcSimulatorBase], None]]] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def every(self, period_s: float, change: Callable[[ModbusPlcSimulatorBase], None]) -> Self:
        """Call change(sim) every period_s seconds, first after one period."""
        if period_s <= 0:
            raise ValueError("period_s must be > 0")
        self._rules.append((period_s, change))
        return self

    def toggle(self, spec: RegisterSpec, period_s: float) -> Self:
        """Invert a bool tag every period_s."""
        return self.every(period_s, lambda sim: sim.set_value(spec, not sim.get_value(spec)))

    def count_up(self, spec: RegisterSpec, period_s: float, step: int = 1) -> Self:
        """Add step to an integer tag every period_s, wrapping around at the type's range."""
        if spec.type not in (DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32):
            raise ValueError(f"count_up needs an integer tag, not {spec.type}")
        if spec.scale != 1.0:
            raise ValueError("count_up counts raw values; use a tag with scale 1")
        span = 1 << (16 * spec.count)
        signed = spec.type in (DataType.INT16, DataType.INT32)

        def bump(sim: ModbusPlcSimulatorBase) -> None:
            value = (int(sim.get_value(spec)) + step) % span
            sim.set_value(spec, value - span if signed and value >= span // 2 else value)

        return self.every(period_s, bump)

    def wander(
        self, spec: RegisterSpec, period_s: float, low: float, high: float, seed: int = 0
    ) -> Self:
        """Random-walk a numeric tag within [low, high] (seeded, so runs repeat)."""
        rng = random.Random(seed)
        stride = (high - low) / 20

        def walk(sim: ModbusPlcSimulatorBase) -> None:
            current = float(sim.get_value(spec))
            if not low <= current <= high:
                current = (low + high) / 2
            sim.set_value(spec, min(high, max(low, current + rng.uniform(-stride, stride))))

        return self.every(period_s, walk)

    def start(self) -> Self:
        """Run the rules in a daemon thread until stop() or the simulator stops."""
        if self._thread is not None:
            raise RuntimeError("script already running")
        self._wake.clear()
        self._thread = threading.Thread(target=self._run, name="modbus-plc-script", daemon=True)
        self._sim._attach(self)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(_CALL_TIMEOUT_S)
        self._thread = None
        self._sim._detach(self)

    def _run(self) -> None:
        now = time.monotonic()
        order = itertools.count()  # tie-breaker so heapq never compares callables
        due = [(now + period, next(order), period, change) for period, change in self._rules]
        heapq.heapify(due)
        while due and not self._wake.wait(max(0.0, due[0][0] - time.monotonic())):
            at, _, period, change = heapq.heappop(due)
            try:
                change(self._sim)
            except RuntimeError:
                return  # the simulator stopped under us
            # Schedule from the due time, not from now, so periods do not drift.
            heapq.heappush(due, (max(at + period, time.monotonic()), next(order), period, change))


def demo_script(sim: ModbusPlcSimulatorBase) -> Script:
    """Start the demo station's live signals: part present, cycle counter, temperature."""
    sim.set_value(DEMO_TAGS["temperature_c"], 24.0)
    return (
        Script(sim)
        .toggle(DEMO_TAGS["part_present"], 2.0)
        .count_up(DEMO_TAGS["cycle_counter"], 0.5)
        .wander(DEMO_TAGS["temperature_c"], 1.0, low=20.0, high=30.0)
        .start()
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process; prints `READY <port>` once listening."""
    parser = argparse.ArgumentParser(prog="python -m sim.modbus_plc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5020, help="0 picks a free port")
    parser.add_argument("--unit", type=int, default=1)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--demo", action="store_true", help="run the demo station signals")
    args = parser.parse_args(argv)

    sim = ModbusPlcSimulator(args.host, args.port, args.unit, args.size)
    program = partial(demo_script, sim) if args.demo else None
    return serve_until_stopped(sim.start, sim.stop, program=program)


if __name__ == "__main__":
    sys.exit(main())
