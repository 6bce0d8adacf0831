"""Boot: open the store, build the supervision tree, start the facade, stop in reverse.

    root (rest_for_one): store -> auth -> operators -> step_events -> query:* -> monitor
                         -> config -> devices (one_for_one: plc:*, scanner:*, printer:*, gpio)
                         -> traceability -> sequencer -> gateway:modbus, gateway:opcua

The simulated devices of a demo station start first, in-process, so the PLC actors
find them on their first connect.
"""

from __future__ import annotations

import gc
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pykka
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from actors.assemblies import AssembliesActor
from actors.auth import AuthActor, EnsureAdmin
from actors.bus import Bus
from actors.config import ConfigActor
from actors.devices import (
    device_specs,
    gateway_specs,
    inspector_spec,
    sequencer_spec,
    traceability_spec,
)
from actors.monitor import Monitor
from actors.operators import OperatorsActor
from actors.query import QueryActor
from actors.quiescence import InFlight
from actors.runtime import Runtime, call
from actors.step_events import StepEventsActor
from actors.store import Flush, StoreActor
from actors.supervisor import ChildSpec, Supervisor, WhichChildren
from api.app import create_app
from controller.clock import RealClock
from controller.config import ConfigError, StationConfig
from controller.overrides import effective_config
from controller.supervision import Backoff, RestartIntensity, Strategy
from state.connection import open_database
from state.errors import StateError
from state.journal import max_journal_seq
from state.settings import load_overrides

__all__ = [
    "Station",
    "freeze_startup_heap",
    "hypercorn_config",
    "release_heap",
    "serve_app",
    "serve_station",
    "start_station",
]

log = logging.getLogger("takt.boot")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass
class Station:
    """A running station: what `stop()` must take down, in reverse order of starting."""

    config: StationConfig
    data_dir: Path
    runtime: Runtime
    database: duckdb.DuckDBPyConnection
    root: pykka.ActorRef[Any]
    token_secret: bytes
    admin_password: str | None
    simulators: list[Any] = field(default_factory=list)
    failed: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        try:
            call(self.runtime, self.runtime.directory.get("store"), Flush(), timeout=10)
        except Exception as exc:  # the store may be the thing that failed
            log.warning("final flush skipped: %s", exc)
        self.root.stop(block=True, timeout=30)
        for sim in reversed(self.simulators):
            sim.stop()
        self.database.close()
        self.runtime.clock.close()


def _secret_file(path: Path, make: Callable[[], bytes]) -> tuple[bytes, bool]:
    """Read a secret, or create it readable by the owner only; (value, created)."""
    if path.exists():
        return path.read_bytes(), False
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return value, True


def _effective_config(config: StationConfig, database: duckdb.DuckDBPyConnection
                      ) -> tuple[StationConfig, list[str]]:
    """The file config with the overrides stored by the API; a stale override (one the
    current file or rules reject) is logged and left out, not allowed to stop the station."""
    overrides = load_overrides(database)
    if not overrides:
        return config, []
    try:
        return effective_config(config, overrides), sorted(overrides)
    except ConfigError as exc:
        log.error("stored config overrides %s no longer apply; using the file as it is:\n%s",
                  sorted(overrides), exc)
        return config, []


def _start_simulators(config: StationConfig, data_dir: Path) -> list[Any]:
    if config.sim is None:
        return []
    from sim.demo import start_demo_plc

    return start_demo_plc(config, data_dir)


def start_station(config: StationConfig, data_dir: Path) -> Station:
    data_dir.mkdir(parents=True, exist_ok=True)
    log.info("starting station %r in %s", config.station.id, data_dir)
    database = open_database(data_dir / "takt.duckdb")
    base = config
    config, overridden = _effective_config(config, database)
    clock = RealClock()
    inflight = InFlight()
    # Seq continues after the journal's last entry, so journal keys never collide.
    bus = Bus(clock, inflight, seq_start=max_journal_seq(database))
    runtime = Runtime(clock=clock, inflight=inflight, bus=bus)
    simulators = _start_simulators(config, data_dir)
    sup = config.supervision
    failed = threading.Event()

    def escalate(reason: str) -> None:
        log.critical("station supervisor gave up: %s", reason)
        failed.set()

    devices = ChildSpec.of(
        Supervisor, "devices", device_specs(config, database),
        strategy=Strategy.ONE_FOR_ONE,
        intensity=RestartIntensity(sup.max_restarts, sup.within_s),
        backoff=Backoff(sup.backoff_min_s, sup.backoff_max_s, sup.backoff_jitter, sup.stable_s),
    )
    root = Supervisor.start(
        runtime, "root",
        [
            ChildSpec.of(StoreActor, "store", database, max_batch=config.store.group_commit_max,
                         shutdown_s=30.0),
            ChildSpec.of(AuthActor, "auth", database),
            ChildSpec.of(OperatorsActor, "operators", database),
            ChildSpec.of(StepEventsActor, "step_events", database, config.station),
            *(ChildSpec.of(QueryActor, f"query:{i}", database)
              for i in range(config.store.query_workers)),
            ChildSpec.of(AssembliesActor, "assemblies", database),
            ChildSpec.of(Monitor, "monitor"),
            ChildSpec.of(ConfigActor, "config", database, base, config, overridden),
            devices,
            traceability_spec(config, database),
            *([inspector_spec(config, database)] if config.inspector.enabled else []),
            *([sequencer_spec(config, database)] if config.coaching.enabled else []),
            *gateway_specs(config),
        ],
        strategy=Strategy.REST_FOR_ONE,
        intensity=RestartIntensity(5, 60.0),
        on_escalate=escalate,
    )
    runtime.directory.set("root", root)  # so the config actor can change the gateways in place
    station = Station(config=config, data_dir=data_dir, runtime=runtime, database=database,
                      root=root, token_secret=b"", admin_password=None,
                      simulators=simulators, failed=failed)
    try:
        call(runtime, root, WhichChildren(), timeout=10)  # answered once every child started
        station.token_secret, _ = _secret_file(data_dir / "token-secret",
                                               lambda: secrets.token_bytes(32))
        station.admin_password = call(runtime, runtime.directory.get("auth"), EnsureAdmin(),
                                      timeout=10)
        if config.sim is not None:
            from sim.demo import start_demo_workers

            # The virtual operator and the demo's model trainer: stopped first.
            simulators += start_demo_workers(config, runtime, database, simulators, data_dir)
    except BaseException:
        station.stop()  # no actor thread may outlive a failed start
        raise
    if station.admin_password is not None:
        _secret_file(data_dir / "admin-password", f"{station.admin_password}\n".encode)
    return station


def hypercorn_config(host: str, port: int) -> HypercornConfig:
    cfg = HypercornConfig()
    cfg.bind = [f"{host}:{port}"]
    cfg.accesslog = None
    cfg.errorlog = logging.getLogger("hypercorn.error")  # our formatter, printed once
    cfg.websocket_max_message_size = 64 * 1024
    cfg.graceful_timeout = 3.0
    cfg.keep_alive_timeout = 75.0
    return cfg


async def serve_app(app: Any, host: str, port: int, on_ready: Callable[[list[str]], None],
                    *, failed: threading.Event | None = None) -> None:
    """Serve an ASGI app on hypercorn (trio) until SIGINT/SIGTERM, or until `failed` is set."""
    cfg = hypercorn_config(host, port)
    stop = trio.Event()

    async def watch_signals(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                            ) -> None:
        with trio.open_signal_receiver(*_STOP_SIGNALS) as signals:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # see run()
            task_status.started()
            async for _ in signals:
                stop.set()
                return

    async def watch_failure(event: threading.Event) -> None:
        await trio.to_thread.run_sync(event.wait, abandon_on_cancel=True)
        stop.set()

    async with trio.open_nursery() as nursery:

        async def server(task_status: trio.TaskStatus[list[str]]) -> None:
            await serve(app, cfg, shutdown_trigger=stop.wait, task_status=task_status)
            nursery.cancel_scope.cancel()  # served its last request: stop the watchers

        await nursery.start(watch_signals)
        if failed is not None:
            nursery.start_soon(watch_failure, failed)
        on_ready(await nursery.start(server))


async def serve_station(station: Station, host: str, port: int,
                        on_ready: Callable[[list[str]], None]) -> None:
    """Serve the facade until SIGINT/SIGTERM or until the root supervisor gives up."""
    app = create_app(station.runtime, station.config, station.token_secret)
    await serve_app(app, host, port, on_ready, failed=station.failed)


def freeze_startup_heap() -> None:
    """Move every object alive after start-up out of the collector's sight.

    A full collection otherwise walks all of them (modules, actors, schemas) and stops every
    thread meanwhile: measured under 50k durable writes/s, the longest pause fell from
    ~40 ms to ~4 ms, which is the difference between meeting the ack p99 budget and not.
    """
    gc.collect()
    gc.freeze()


def release_heap() -> None:
    """Undo the freeze and collect, while duckdb can still release its objects (not in
    interpreter teardown, where it reports them as leaked)."""
    gc.unfreeze()
    gc.collect()


def run(config: StationConfig, data_dir: Path, host: str, port: int) -> int:
    """`takt run`: start, print where it listens, serve until stopped; exit status."""
    t0 = time.monotonic()
    # Hold Ctrl-C and SIGTERM while starting: the actor threads inherit the mask, so a stop
    # signal can only reach the main thread, and one that arrives now waits until the trio
    # receiver listens (serve_station unblocks them there) and then stops everything cleanly.
    # Without this, a Ctrl-C during start-up left the actor threads running.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        station = start_station(config, data_dir)
    except (OSError, StateError) as exc:
        # A port in use, a data dir another takt holds: the user's to fix, not a crash.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        print(f"takt: cannot start: {exc}", file=sys.stderr)
        return 1
    except BaseException:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        raise
    freeze_startup_heap()
    if station.admin_password is not None:
        print(f"First start: created user 'admin' with password {station.admin_password}\n"
              f"  (also written to {data_dir / 'admin-password'}, readable by you only;"
              " it is not shown again)", flush=True)

    def ready(binds: list[str]) -> None:
        print(f"Takt station '{config.station.id}' ready on {', '.join(binds)} "
              f"in {time.monotonic() - t0:.2f}s (docs: {binds[0]}/docs)", flush=True)

    try:
        trio.run(serve_station, station, host, port, ready)
    except* OSError as group:
        reasons = "; ".join(str(e) for e in group.exceptions)
        print(f"takt: cannot serve on {host}:{port}: {reasons}", file=sys.stderr)
        return_code = 1
    else:
        return_code = 1 if station.failed.is_set() else 0
    finally:
        log.info("stopping")
        station.stop()
        release_heap()
    if station.failed.is_set():
        print("Takt stopped: the station supervisor gave up (see the log)", file=sys.stderr)
    return return_code
