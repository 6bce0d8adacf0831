"""Scanner actor: one per reader, over TCP, serial or Modbus.

Every code a reader sends crosses the input boundary (`input.scanner.<name>`) and is then
published as `device.scanner.<name>.read` with the scanner's role, for the traceability
logic to act on. A lost link fails the actor; its supervisor reconnects with backoff.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from actors.base import TaktActor, handles
from actors.health import HealthState
from actors.runtime import ActorUnavailable, Runtime, tell
from controller.scanner_config import ScannerConfig, ScannerModel, ScannerTransport
from drivers.errors import DeviceUnavailable, DriverError
from drivers.scanner.codec import Framing
from drivers.scanner.codec import Terminator as WireTerminator

__all__ = ["GetScannerStatus", "ScanInput", "ScannerActor", "ScannerStatus", "TestScanner",
           "TriggerScan"]


class ScanInput(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A code as the reader sent it (the recorded input); latin-1 text keeps every byte."""

    code: str | None  # None: a triggered read that found nothing


class GetScannerStatus(msgspec.Struct, frozen=True, tag=True):
    pass


class TestScanner(msgspec.Struct, frozen=True, tag=True):
    """Check the reader answers: a DMCC query for DataMan readers, the link otherwise."""


class TriggerScan(msgspec.Struct, frozen=True, tag=True):
    pass


class ScannerStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str
    last_error: str | None
    transport: str
    model: str
    role: str
    address: str
    triggered: bool
    reads: int
    no_reads: int
    malformed: int
    last_code: str | None
    last_read_us: int | None


class _Read(msgspec.Struct, frozen=True):
    code: bytes | None


class _Trouble(msgspec.Struct, frozen=True):
    kind: str  # malformed | lost
    reason: str


def _address(c: ScannerConfig) -> str:
    if c.transport is ScannerTransport.SERIAL and c.serial is not None:
        return c.serial.device
    if c.transport is ScannerTransport.MODBUS:
        return f"{c.host}:{c.port} unit {c.unit}"
    return f"{c.host}:{c.port}"


class ScannerActor(TaktActor):
    fatal = (DeviceUnavailable,)

    def __init__(self, runtime: Runtime, name: str, config: ScannerConfig, *,
                 live: bool = True, **kw: Any) -> None:
        super().__init__(runtime, name, **kw)
        self.config = config
        self.live = live  # replay drives the actor with ScanInput instead of a reader
        self.link: Any = None
        self.source = f"scanner.{config.name}"
        self.topic = f"device.scanner.{config.name}.read"
        self.reads = self.no_reads = self.malformed = 0
        self.last: tuple[str, int] | None = None

    def started(self) -> None:
        if self.live:
            self.link = self._make_link()
            try:
                self.link.connect()
            except DriverError as exc:
                raise DeviceUnavailable(str(exc)) from exc
        self.set_health(HealthState.UP)

    def stopping(self) -> None:
        self._close()

    def failed(self, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.close()

    def _make_link(self) -> Any:
        c = self.config
        ref = self.actor_ref

        def send(message: Any) -> None:
            try:
                tell(self.runtime, ref, message)
            except ActorUnavailable:
                pass  # gone; its replacement reconnects

        callbacks: dict[str, Any] = {
            "on_read": lambda data: send(_Read(data)),
            "on_no_read": lambda: send(_Read(None)),
            "on_malformed": lambda reason: send(_Trouble("malformed", reason)),
            "on_lost": lambda reason: send(_Trouble("lost", reason)),
        }
        framing = Framing(terminator=WireTerminator(c.terminator.value), stx_etx=c.stx_etx,
                          no_read=c.no_read.encode("latin-1"))
        timeout_s = c.timeout_ms / 1000
        if c.transport is ScannerTransport.TCP:
            from drivers.scanner.tcp import TcpScanner

            return TcpScanner(c.host, c.port, framing=framing, timeout_s=timeout_s,
                              name=c.name, **callbacks)
        if c.transport is ScannerTransport.SERIAL:
            from drivers.scanner.serial import SerialScanner

            serial = c.serial
            assert serial is not None  # the config rules require it
            return SerialScanner(serial.device, baudrate=serial.baudrate,
                                 parity=serial.parity.value, stopbits=serial.stopbits,
                                 bytesize=serial.bytesize, framing=framing,
                                 timeout_s=timeout_s, name=c.name, **callbacks)
        from drivers.modbus.transport import ModbusTcpTransport
        from drivers.scanner.modbus import ModbusScanner

        return ModbusScanner(ModbusTcpTransport(c.host, c.port, c.unit, timeout_s),
                             poll_interval_s=c.poll_interval_ms / 1000, name=c.name,
                             **callbacks)

    @handles(_Read)
    def _on_read(self, msg: _Read) -> None:
        sample = ScanInput(code=None if msg.code is None else msg.code.decode("latin-1"))
        self.runtime.ingest.input(self.source, sample)
        self._apply(sample)

    @handles(ScanInput)
    def _on_input(self, msg: ScanInput) -> None:
        self._apply(msg)

    @handles(_Trouble)
    def _on_trouble(self, msg: _Trouble) -> None:
        if msg.kind == "lost":
            raise DeviceUnavailable(f"{self.config.name}: {msg.reason}")
        self.malformed += 1
        self.errors += 1
        self.log.warning("malformed frame from scanner %s: %s", self.config.name, msg.reason)

    @handles(GetScannerStatus)
    def _status(self, _: GetScannerStatus) -> ScannerStatus:
        c = self.config
        health = self.runtime.health.component(self.name)
        return ScannerStatus(
            name=c.name, state=health.state.value, last_error=health.last_error,
            transport=c.transport.value, model=c.model.value, role=c.role.value,
            address=_address(c), triggered=c.triggered, reads=self.reads,
            no_reads=self.no_reads, malformed=self.malformed,
            last_code=self.last[0] if self.last else None,
            last_read_us=self.last[1] if self.last else None)

    @handles(TriggerScan)
    def _trigger(self, _: TriggerScan) -> bool:
        if not self.config.triggered:
            raise ValueError(f"scanner {self.config.name} is free-running; it cannot be triggered")
        self._live().trigger()
        return True

    @handles(TestScanner)
    def _test(self, _: TestScanner) -> dict[str, Any]:
        link = self._live()
        started = time.perf_counter()
        answer, error = None, None
        if hasattr(link, "command") and self.config.model is ScannerModel.COGNEX_DATAMAN:
            try:
                answer = link.command("GET DEVICE.TYPE").text
            except DeviceUnavailable:
                raise
            except DriverError as exc:  # refused or unanswered: the link itself is up
                error = str(exc)
        return {"ok": error is None, "answer": answer, "error": error,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3)}

    def _live(self) -> Any:
        if self.link is None:
            raise DeviceUnavailable(f"{self.config.name} has no reader link (replay)")
        return self.link

    def _apply(self, sample: ScanInput) -> None:
        now = self.clock.now_us()
        if sample.code is None:
            self.no_reads += 1
        else:
            self.reads += 1
            self.last = (sample.code, now)
        self.publish(self.topic, {"code": sample.code, "role": self.config.role.value,
                                  "scanner": self.config.name})
