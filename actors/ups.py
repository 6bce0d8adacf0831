"""UPS actor: polls the station's UPS over Network UPS Tools and acts on its power state.

Every poll's variables cross the input boundary (`input.ups.<name>`); a change of power state
(controller/power.py) is published durable as `device.ups.<name>.power`, so it is journaled
and shown on HMIs. On low battery the store is flushed and checkpointed at once, and the event
carries `pause_coaching`: the sequencer stops at the next safe point. A lost upsd fails the
actor; its supervisor reconnects with backoff. Polls are short (timeout_ms) and run in the
actor's own thread: nothing else waits on this actor but status requests.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from actors.base import TaktActor, handles
from actors.health import HealthState
from actors.runtime import ActorUnavailable, Request, Runtime, tell
from actors.store import Flush
from controller.power import PowerAction, PowerState, power_change, power_state
from controller.ups_config import UpsConfig
from drivers.errors import DeviceUnavailable, DriverError, FrameError
from drivers.nut.client import NutClient, NutError
from drivers.nut.status import UpsReading, reading_from_vars

__all__ = ["GetUpsStatus", "NotSimulated", "SimulatePower", "TestUps", "UpsActor", "UpsView"]


class GetUpsStatus(msgspec.Struct, frozen=True, tag=True):
    pass


class TestUps(msgspec.Struct, frozen=True, tag=True):
    """Poll the UPS now and say how long it took."""


class SimulatePower(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    on_battery: bool
    battery_percent: float = 100.0


class NotSimulated(RuntimeError):
    """A power simulation asked of a real UPS."""


class UpsView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    ups: str
    address: str
    simulated: bool
    state: str  # the power state: online, on_battery, low_battery, unknown
    flags: list[str]
    battery_charge: float | None
    battery_runtime_s: int | None
    input_voltage: float | None
    load: float | None
    since_us: int | None  # when the power state last changed
    last_poll_us: int | None
    polls: int
    problems: int  # values the UPS sent that could not be read
    errors: int
    last_error: str | None


class _Poll(msgspec.Struct, frozen=True):
    pass


class UpsActor(TaktActor):
    fatal = (DeviceUnavailable,)

    def __init__(self, runtime: Runtime, name: str, config: UpsConfig, **kw: Any) -> None:
        super().__init__(runtime, name, **kw)
        self.config = config
        self.topic = f"device.ups.{config.name}.power"
        self.source = f"ups.{config.name}"
        self.sim: Any = None
        self.client: NutClient | None = None
        self.reading: UpsReading | None = None
        self.state = PowerState.UNKNOWN
        self.since_us: int | None = None
        self.last_poll_us: int | None = None
        self.polls = self.problems = 0
        self.last_error: str | None = None
        self._timer: Any = None
        # A restarted actor carries on from the state its predecessor published: a UPS that
        # stayed on battery through a reconnect is not announced twice.
        for event in self.bus.retained([self.topic]):
            if isinstance(event.data, dict) and event.data.get("state") in set(PowerState):
                self.state = PowerState(event.data["state"])

    # --- lifecycle ---------------------------------------------------------------------------

    def started(self) -> None:
        host, port = self.config.host, self.config.port
        if self.config.simulated:
            from sim.nut_ups import NutUpsSimulator

            self.sim = NutUpsSimulator(port=0, upses={self.config.ups: _SIMULATED})
            port = self.sim.start()
        self.client = NutClient(host, port, timeout_s=self.config.timeout_ms / 1000,
                                username=self.config.username, password=self.config.password,
                                name=f"ups {self.config.name}")
        try:
            self.client.connect()
        except DriverError as exc:
            raise DeviceUnavailable(f"{self.config.name}: {exc}") from exc
        self.set_health(HealthState.UP)
        self._poll()

    def stopping(self) -> None:
        self._close()

    def failed(self, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        client, self.client = self.client, None
        if client is not None:
            client.close()
        sim, self.sim = self.sim, None
        if sim is not None:
            sim.stop()

    # --- polling -----------------------------------------------------------------------------

    @handles(_Poll)
    def _on_poll(self, _: _Poll) -> None:
        self._poll()

    def _poll(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        try:
            self._read()
        finally:
            self._timer = self.tell_self_later(self.config.poll_interval_ms / 1000, _Poll())

    def _read(self) -> None:
        assert self.client is not None
        try:
            variables = self.client.list_vars(self.config.ups)
        except NutError as exc:
            # DATA-STALE / DRIVER-NOT-CONNECTED: upsd is there, the UPS is not. Anything else
            # (UNKNOWN-UPS, ACCESS-DENIED) is a config mistake that retrying will not mend.
            self.errors += 1
            self.last_error = str(exc)
            self._apply(PowerState.UNKNOWN, reason=str(exc))
            return
        except FrameError as exc:
            self.errors += 1
            self.last_error = str(exc)
            self.log.warning("malformed answer from UPS %s: %s", self.config.name, exc)
            raise DeviceUnavailable(f"{self.config.name}: {exc}") from exc
        except DriverError as exc:
            raise DeviceUnavailable(f"{self.config.name}: {exc}") from exc
        self.runtime.ingest.input(self.source, variables)
        reading = reading_from_vars(variables)
        self.polls += 1
        self.last_poll_us = self.clock.now_us()
        if reading.problems:
            self.problems += len(reading.problems)
            self.log.warning("UPS %s sent values Takt cannot read: %s", self.config.name,
                             "; ".join(reading.problems))
        self.reading = reading
        self.last_error = None
        flags = sorted(reading.status.flags) if reading.status is not None else []
        self._apply(power_state(flags, reading.battery_charge,
                                self.config.low_battery_percent))

    def _apply(self, state: PowerState, reason: str | None = None) -> None:
        change = power_change(self.state, state)
        if change is None:
            return
        self.state, self.since_us = state, self.clock.now_us()
        data = {**self._summary(), "previous": change.previous.value,
                "alert": PowerAction.ALERT in change.actions,
                "pause_coaching": PowerAction.PAUSE_COACHING in change.actions,
                "resume": PowerAction.RESUME in change.actions, "reason": reason}
        self.publish(self.topic, data, durable=True)
        if PowerAction.FLUSH_STORE in change.actions:
            self._flush_store()

    def _flush_store(self) -> None:
        """Commit and checkpoint now: the station may lose power before the next idle moment."""
        def flushed(_: Any, error: BaseException | None) -> None:
            if error is not None:
                self.log.error("UPS on low battery: the store could not flush: %s", error)

        try:
            tell(self.runtime, self.runtime.directory.get("store"), Request(Flush(), flushed))
        except ActorUnavailable as exc:
            flushed(None, exc)

    def _summary(self) -> dict[str, Any]:
        r = self.reading
        return {"ups": self.config.name, "state": self.state.value,
                "flags": sorted(r.status.flags) if r and r.status else [],
                "battery_charge": r.battery_charge if r else None,
                "battery_runtime_s": r.battery_runtime_s if r else None}

    # --- requests ----------------------------------------------------------------------------

    @handles(GetUpsStatus)
    def _status(self, _: GetUpsStatus) -> UpsView:
        c, r = self.config, self.reading
        return UpsView(
            name=c.name, ups=c.ups, address=f"{c.host}:{c.port}", simulated=c.simulated,
            state=self.state.value,
            flags=sorted(r.status.flags) if r and r.status else [],
            battery_charge=r.battery_charge if r else None,
            battery_runtime_s=r.battery_runtime_s if r else None,
            input_voltage=r.input_voltage if r else None, load=r.load if r else None,
            since_us=self.since_us, last_poll_us=self.last_poll_us, polls=self.polls,
            problems=self.problems, errors=self.errors, last_error=self.last_error)

    @handles(TestUps)
    def _test(self, _: TestUps) -> dict[str, Any]:
        started = time.perf_counter()
        self._poll()
        return {"ok": self.last_error is None, "state": self.state.value,
                "error": self.last_error,
                "latency_ms": round((time.perf_counter() - started) * 1000, 3)}

    @handles(SimulatePower)
    def _simulate(self, msg: SimulatePower) -> UpsView:
        if self.sim is None:
            raise NotSimulated(f"UPS {self.config.name} is a real UPS ({self.config.host}:"
                               f"{self.config.port}); only a simulated one can be switched")
        if not 0 <= msg.battery_percent <= 100:
            raise ValueError("battery_percent must be within 0..100")
        self.sim.set_vars({"battery.charge": f"{msg.battery_percent:g}"})
        if msg.on_battery:
            self.sim.on_battery(msg.battery_percent)
        else:
            self.sim.on_line()
        self._poll()  # the change shows at once, as the next poll would show it
        return self._status(GetUpsStatus())


# A small line-interactive UPS as upsd would report it through a NUT driver.
_SIMULATED = {
    "device.mfr": "Takt", "device.model": "Simulated UPS 1500", "ups.status": "OL",
    "battery.charge": "100", "battery.charge.low": "10", "battery.runtime": "2400",
    "input.voltage": "230.0", "ups.load": "23", "output.voltage": "230.0",
}
