"""Modbus RTU PLC simulator: the PLC tables of sim.modbus_plc served on a serial line.

Run `python -m sim.modbus_rtu_plc --pty` to get a linked pty pair without hardware: the
simulator serves one end and prints `READY <path>` with the end to point Takt at.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial

import serial
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU
from pymodbus.server import ModbusBaseServer, ModbusSerialServer
from pymodbus.simulator import SimDevice

from drivers.modbus.transport import find_rtu_frame
from sim.cli import serve_until_stopped
from sim.modbus_plc import ModbusPlcSimulatorBase, demo_script
from sim.ptypair import PtyPair

__all__ = ["ModbusRtuPlcSimulator", "main"]

_RTU_MAX_FRAME = 256


class _HuntingRtuFramer(FramerRTU):
    """RTU request framer that finds this unit's request behind line noise.

    pymodbus's framer throws the whole buffer away at the first candidate with a bad CRC,
    and over a pty (no baud timing, so no silence between frames) noise arrives glued to
    the request: the request would be lost and the client would see a dead device. Frames
    for other units are skipped like noise, so they get no answer, as on a multi-drop line.
    """

    def __init__(self, decoder: DecodePDU, unit: int) -> None:
        super().__init__(decoder)
        self._unit = unit

    def decode(self, data: bytes) -> tuple[int, int, int, bytes]:
        span = find_rtu_frame(data, self.decoder, self._unit)
        if span is None:
            # Nothing complete yet; noise older than one whole frame can never be part of one.
            return max(0, len(data) - _RTU_MAX_FRAME), 0, 0, self.EMPTY
        start, end = span
        # A master waits for the answer before its next request, so bytes glued after a
        # request are noise (or a duplicate); consuming them keeps answers in step.
        return len(data), data[start], 0, data[start + 1 : end - 2]


class ModbusRtuPlcSimulator(ModbusPlcSimulatorBase):
    """A Modbus RTU slave on the serial device port_path, with the tables and API of the TCP one.

    Requests for other units get no answer, as on a real multi-drop line.
    """

    def __init__(
        self, port_path: str, unit: int = 1, size: int = 1000, baudrate: int = 19200
    ) -> None:
        if not 1 <= unit <= 247:
            raise ValueError("unit must be 1..247 on a serial line")
        if baudrate <= 0:
            raise ValueError("baudrate must be > 0")
        super().__init__(unit, size)
        self._port_path = port_path
        self._baudrate = baudrate

    @property
    def port_path(self) -> str:
        """The serial device served."""
        return self._port_path

    def start(self) -> None:
        """Open the serial device and serve; restartable after stop(), tables zeroed."""
        self._start_serving()

    async def _listen(self, device: SimDevice) -> ModbusBaseServer:
        server = ModbusSerialServer(device, port=self._port_path, baudrate=self._baudrate)
        # pymodbus builds the framer when the port opens, calling framer(decoder).
        server.framer = partial(_HuntingRtuFramer, unit=self._unit)
        try:
            await server.serve_forever(background=True)
        except RuntimeError as exc:  # pymodbus's word for "could not open", reason logged only
            raise OSError(
                f"cannot open serial port {self._port_path}: {_open_failure(self._port_path)}"
            ) from exc
        return server


def _open_failure(path: str) -> str:
    # pymodbus swallows the reason; opening once more recovers it for the message.
    try:
        serial.serial_for_url(path, exclusive=True).close()
    except (OSError, ValueError) as exc:
        return str(exc)
    return "pymodbus could not listen on it"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process; prints `READY <device path>` for the client to open."""
    parser = argparse.ArgumentParser(prog="python -m sim.modbus_rtu_plc", description=__doc__)
    line = parser.add_mutually_exclusive_group(required=True)
    line.add_argument("--serial", metavar="PATH", help="serve on this serial device")
    line.add_argument(
        "--pty", action="store_true", help="make a pty pair, serve one end, print the other"
    )
    parser.add_argument("--unit", type=int, default=1)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--baudrate", type=int, default=19200)
    parser.add_argument("--demo", action="store_true", help="run the demo station signals")
    args = parser.parse_args(argv)

    pair = PtyPair().start() if args.pty else None
    try:
        client_path = pair.a_path if pair is not None else args.serial
        sim = ModbusRtuPlcSimulator(
            pair.b_path if pair is not None else args.serial, args.unit, args.size, args.baudrate
        )

        def start() -> str:
            sim.start()
            return client_path

        program = partial(demo_script, sim) if args.demo else None
        return serve_until_stopped(start, sim.stop, program=program)
    finally:
        if pair is not None:
            pair.stop()


if __name__ == "__main__":
    sys.exit(main())
