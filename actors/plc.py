"""PLC actor: one per PLC, over any link (Modbus TCP/RTU, OPC-UA, TCP socket).

Every decoded change passes the input boundary (`input.plc.<name>`) before the actor
applies it, and replay feeds the same `SignalInput` messages back in. A lost link fails
the actor; its supervisor reconnects with backoff, and the first read after a reconnect
republishes every signal so subscribers see the current state. The heartbeat watchdog,
the four-phase handshakes and the pulse counters run here on the decoded values; their
logic is pure code in `controller/`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from actors.base import TaktActor, handles
from actors.health import HealthState
from actors.plc_links import LinkCallbacks, PlcLink, TagInfo, make_link
from actors.plc_messages import (
    Browse,
    CompleteHandshake,
    LinkCounters,
    LinkTest,
    NotWritable,
    PlcInfo,
    ReadSignals,
    SignalInput,
    SignalValue,
    StartHandshake,
    TestLink,
    UnknownHandshake,
    UnknownSignal,
    Value,
    WatchdogExpired,
    WriteSignal,
)
from actors.runtime import ActorUnavailable, Runtime, tell
from controller.config import Direction, HandshakeRole, PlcConfig, TagBinding, ValueType
from controller.handshake import Effect, Read, Report, Requester, Responder, Write
from controller.pulses import PulseTracker
from controller.watchdog import HeartbeatWatch, next_beat
from drivers.errors import DeviceUnavailable, DriverError

__all__ = [
    "Browse",
    "CompleteHandshake",
    "LinkTest",
    "NotWritable",
    "PlcActor",
    "PlcInfo",
    "ReadSignals",
    "SignalInput",
    "SignalValue",
    "StartHandshake",
    "TestLink",
    "UnknownHandshake",
    "UnknownSignal",
    "WatchdogExpired",
    "WriteSignal",
]

LinkFactory = Callable[[PlcConfig, LinkCallbacks], PlcLink]


class _Poll(msgspec.Struct, frozen=True):
    pass


class _Tick(msgspec.Struct, frozen=True):
    """Housekeeping: heartbeat out, watchdog, handshake timeouts, pulse reconciliation."""


class _Pushed(msgspec.Struct, frozen=True):
    signal: str
    value: Value


class _Trouble(msgspec.Struct, frozen=True):
    kind: str  # malformed | refused | lost
    reason: str


_TICK_S = 0.1  # handshake timeouts and pulse reports are resolved to this


def address_of(config: PlcConfig) -> str:
    if config.endpoint is not None:
        return config.endpoint
    if config.serial is not None:
        return f"{config.serial.device} unit {config.unit}"
    return f"{config.host}:{config.port}"


class PlcActor(TaktActor):
    fatal = (DeviceUnavailable,)

    def __init__(self, runtime: Runtime, name: str, config: PlcConfig, *,
                 link_factory: LinkFactory = make_link, poll: bool = True,
                 **kw: Any) -> None:
        super().__init__(runtime, name, **kw)
        self.config = config
        self.link_factory = link_factory
        self.link: PlcLink | None = None
        self.live = poll  # replay drives the actor with SignalInput instead of a device
        self.bindings: dict[str, TagBinding] = {b.name: b for b in config.bindings}
        self.values: dict[str, tuple[Value, int]] = {}
        self.source = f"plc.{config.name}"
        self.prefix = f"device.plc.{config.name}"
        self.period_s = config.poll_interval_ms / 1000
        self.next_poll_s = 0.0
        self.counts = {"malformed": 0, "refused": 0, "polls": 0, "pushed": 0}
        self.poll_max_s = 0.0
        hb = config.heartbeat
        self.watch = (HeartbeatWatch(hb.period_ms * 1000, hb.stale_periods)
                      if hb is not None and hb.in_signal else None)
        self.beat = 0
        self.next_beat_s = 0.0
        self.handshakes: dict[str, Responder | Requester] = {
            h.name: (Responder if h.role is HandshakeRole.RESPONDER else Requester)(
                h.name, request=h.request, ack=h.ack, done=h.done, data=h.data,
                result=h.result, timeout_us=h.timeout_ms * 1000)
            for h in config.handshakes
        }
        self.flag_owners: dict[str, list[Responder | Requester]] = {}
        for machine in self.handshakes.values():
            for flag in machine.flags:
                self.flag_owners.setdefault(flag, []).append(machine)
        self.pulses: dict[str, PulseTracker] = {}
        self.pulse_counters: dict[str, str] = {}  # counter binding -> pulsed binding
        for b in config.bindings:
            if b.pulse_counter is not None:
                wide = self.bindings[b.pulse_counter].type in (ValueType.INT32, ValueType.UINT32)
                self.pulses[b.name] = PulseTracker(modulus=1 << (32 if wide else 16))
                self.pulse_counters[b.pulse_counter] = b.name

    # --- lifecycle -------------------------------------------------------------------

    def started(self) -> None:
        if not self.live:
            self.set_health(HealthState.UP)
            return
        ref = self.actor_ref

        def send(message: Any) -> None:
            try:
                tell(self.runtime, ref, message)
            except ActorUnavailable:
                pass  # the actor is gone; a replacement reconnects and republishes

        callbacks = LinkCallbacks(
            push=lambda signal, value: send(_Pushed(signal, value)),
            malformed=lambda reason: send(_Trouble("malformed", reason)),
            refused=lambda reason: send(_Trouble("refused", reason)),
            lost=lambda reason: send(_Trouble("lost", reason)),
        )
        self.link = self.link_factory(self.config, callbacks)
        try:
            self.link.connect()
        except DriverError as exc:
            # Unknown nodes or wrong types are as fatal as a refused connection: the
            # supervisor retries with backoff, and health shows the reason meanwhile.
            raise DeviceUnavailable(str(exc)) from exc
        now = self.clock.now_us()
        if self.watch is not None:
            self.watch.start(now)
        for machine in self.handshakes.values():
            self._run(machine, machine.reset())
        if self.link.polled:
            self._poll_once()  # the first read after (re)connecting republishes every signal
            self.next_poll_s = self.clock.monotonic() + self.period_s
            self.tell_self_later(self.period_s, _Poll())
        if self._needs_tick():
            self.next_beat_s = self.clock.monotonic()
            self.tell_self_later(0, _Tick())
        self.set_health(HealthState.UP)

    def stopping(self) -> None:
        self._close()

    def failed(self, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.close()

    def _needs_tick(self) -> bool:
        return bool(self.config.heartbeat or self.handshakes or self.pulses)

    # --- messages --------------------------------------------------------------------

    @handles(_Poll)
    def _on_poll(self, msg: _Poll) -> None:
        self._poll_once()
        # Fixed rate, not fixed delay: the read time must not stretch the period. A poll
        # that overran skips the slots it missed instead of bunching up behind them.
        now = self.clock.monotonic()
        self.next_poll_s += self.period_s
        if self.next_poll_s < now:
            self.next_poll_s = now + self.period_s
        self.tell_self_later(self.next_poll_s - now, msg)

    @handles(_Tick)
    def _on_tick(self, msg: _Tick) -> None:
        now_us = self.clock.now_us()
        if self.watch is not None and self.watch.stale(now_us):
            raise WatchdogExpired(f"{self.config.name}: {self.watch.describe(now_us)}")
        hb = self.config.heartbeat
        if hb is not None and hb.out_signal and self.clock.monotonic() >= self.next_beat_s:
            self.beat = next_beat(self.beat)
            self._link().write(hb.out_signal, self.beat)
            self.next_beat_s += hb.period_ms / 1000
        for machine in self.handshakes.values():
            self._run(machine, machine.tick(now_us))
        if self.link is not None and not self.link.polled:
            # Pushed links have no read cycle; polled ones settle after each complete poll
            # only, since an edge and its count may be read one cycle apart.
            self._settle_pulses()
        self.tell_self_later(_TICK_S, msg)

    @handles(_Pushed)
    def _on_pushed(self, msg: _Pushed) -> None:
        self.counts["pushed"] += 1
        self._changed(msg.signal, msg.value)

    @handles(_Trouble)
    def _on_trouble(self, msg: _Trouble) -> None:
        if msg.kind == "lost":
            raise DeviceUnavailable(f"{self.config.name}: {msg.reason}")
        self.counts[msg.kind] += 1
        self.errors += 1
        what = "malformed frame" if msg.kind == "malformed" else "exception response"
        self.log.warning("%s from %s: %s", what, self.config.name, msg.reason)

    @handles(SignalInput)
    def _on_input(self, msg: SignalInput) -> None:
        self._apply(msg)

    @handles(ReadSignals)
    def _read(self, _: ReadSignals) -> PlcInfo:
        return self._info()

    @handles(WriteSignal)
    def _write(self, msg: WriteSignal) -> Value | None:
        binding = self._binding(msg.signal)
        if binding.direction is not Direction.OUT:
            raise NotWritable(f"{self.config.name}.{msg.signal} is an input; it cannot be written")
        self._link().write(msg.signal, msg.value)
        if msg.read_back:
            return dict(self._link().read([msg.signal])).get(msg.signal)
        return msg.value

    @handles(TestLink)
    def _test(self, _: TestLink) -> LinkTest:
        names = [b.name for b in self.config.bindings if b.direction is Direction.IN]
        before = dict(self.counts)
        started = time.perf_counter()
        values = self._link().read(names) if names else []
        latency_ms = (time.perf_counter() - started) * 1000
        failures = sum(self.counts[k] - before[k] for k in ("malformed", "refused"))
        error = f"{failures} read(s) failed; see the PLC's log" if failures else None
        return LinkTest(ok=not failures, latency_ms=round(latency_ms, 3),
                        signals_read=len(values), error=error)

    @handles(Browse)
    def _browse(self, _: Browse) -> list[TagInfo]:
        return self._link().browse()

    @handles(StartHandshake)
    def _start_handshake(self, msg: StartHandshake) -> str:
        machine = self._machine(msg.handshake, Requester)
        self._run(machine, machine.start(msg.data, self.clock.now_us()))
        return machine.phase.value

    @handles(CompleteHandshake)
    def _complete_handshake(self, msg: CompleteHandshake) -> str:
        machine = self._machine(msg.handshake, Responder)
        self._run(machine, machine.complete(msg.result, self.clock.now_us()))
        return machine.phase.value

    # --- helpers ---------------------------------------------------------------------

    def _link(self) -> PlcLink:
        if self.link is None:
            raise DeviceUnavailable(f"{self.config.name} has no device link (replay)")
        return self.link

    def _binding(self, name: str) -> TagBinding:
        binding = self.bindings.get(name)
        if binding is None:
            raise UnknownSignal(f"{self.config.name} has no signal {name!r}")
        return binding

    def _machine(self, name: str, kind: type) -> Any:
        machine = self.handshakes.get(name)
        if machine is None:
            raise UnknownHandshake(f"{self.config.name} has no handshake {name!r}")
        if not isinstance(machine, kind):
            role = "responder" if kind is Responder else "requester"
            raise NotWritable(f"handshake {name!r} is not one where Takt is the {role}")
        return machine

    def _poll_once(self) -> None:
        started = time.perf_counter()
        for name, value in self._link().poll():
            self._changed(name, value)
        self.counts["polls"] += 1
        self.poll_max_s = max(self.poll_max_s, time.perf_counter() - started)
        self._settle_pulses()

    def _changed(self, name: str, value: Value) -> None:
        last = self.values.get(name)
        if last is None or last[0] != value:
            sample = SignalInput(signal=name, value=value)
            self.runtime.ingest.input(self.source, sample)
            self._apply(sample)

    def _apply(self, sample: SignalInput) -> None:
        binding = self.bindings.get(sample.signal)
        if binding is None:
            self.log.warning("input for unknown signal %r ignored", sample.signal)
            return
        last = self.values.get(sample.signal)
        now = self.clock.now_us()
        self.values[sample.signal] = (sample.value, now)
        self.publish(
            f"{self.prefix}.signal",
            {"signal": sample.signal, "value": sample.value,
             "previous": None if last is None else last[0]},
            durable=binding.durable,
        )
        self._observe(sample.signal, sample.value, now)

    def _observe(self, signal: str, value: Value, now_us: int) -> None:
        hb = self.config.heartbeat
        if self.watch is not None and hb is not None and signal == hb.in_signal:
            self.watch.observe(int(value), now_us)
        if signal in self.pulses:
            self.pulses[signal].level_changed(bool(value))
        if signal in self.pulse_counters:
            self.pulses[self.pulse_counters[signal]].count_changed(int(value))
        if self.link is None:
            return  # replay: handshakes answer the live PLC only
        for machine in self.flag_owners.get(signal, ()):
            self._run(machine, machine.flag_changed(signal, bool(value), now_us))

    def _settle_pulses(self) -> None:
        for signal, tracker in self.pulses.items():
            missed = tracker.settle()
            if missed:
                self.log.warning("%s.%s: %d pulse(s) shorter than the poll interval",
                                 self.config.name, signal, missed)
                self.publish(f"{self.prefix}.pulse_missed",
                             {"signal": signal, "missed": missed, "counter": tracker.count,
                              "missed_total": tracker.missed_total}, durable=True)

    def _run(self, machine: Responder | Requester, effects: Iterable[Effect]) -> None:
        pending = list(effects)
        while pending:
            effect = pending.pop(0)
            if isinstance(effect, Write):
                self._link().write(effect.signal, effect.value)
            elif isinstance(effect, Read):
                values = dict(self._link().read(effect.signals)) if effect.signals else {}
                pending[:0] = machine.data_read(values, self.clock.now_us())
            elif isinstance(effect, Report):
                self._report(machine, effect)

    def _report(self, machine: Responder | Requester, report: Report) -> None:
        if report.event in ("timeout", "stalled"):
            self.log.warning("handshake %s %s: %s", machine.name, report.event,
                             dict(report.detail))
        self.publish(f"{self.prefix}.handshake",
                     {"handshake": machine.name, "event": report.event,
                      "phase": machine.phase.value, **report.detail}, durable=True)

    def _info(self) -> PlcInfo:
        c = self.config
        signals = {}
        for name, binding in self.bindings.items():
            value, ts = self.values.get(name, (None, None))
            signals[name] = SignalValue(value=value, ts_us=ts, direction=binding.direction.value)
        health = self.runtime.health.component(self.name)
        now = self.clock.now_us()
        heartbeat = None
        if c.heartbeat is not None:
            heartbeat = {"out": self.beat if c.heartbeat.out_signal else None,
                         "in": self.watch.last_value if self.watch else None,
                         "in_quiet_ms": ((now - self.watch.changed_at_us) // 1000
                                         if self.watch else None)}
        return PlcInfo(
            name=c.name, state=health.state.value, last_error=health.last_error,
            protocol=c.protocol.value, address=address_of(c),
            poll_interval_ms=c.poll_interval_ms, signals=signals,
            counters=self._link_counters(), heartbeat=heartbeat,
            handshakes=[m.status() for m in self.handshakes.values()],
        )

    def _link_counters(self) -> LinkCounters:
        return LinkCounters(
            malformed_frames=self.counts["malformed"],
            exception_responses=self.counts["refused"],
            missed_pulses=sum(t.missed_total for t in self.pulses.values()),
            polls=self.counts["polls"], poll_max_ms=round(self.poll_max_s * 1000, 3),
            pushed=self.counts["pushed"],
        )


