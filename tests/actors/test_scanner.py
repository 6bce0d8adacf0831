"""The scanner actor against the TCP scanner simulator: reads, triggers, bad frames, loss."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from actors.health import HealthState
from actors.runtime import Runtime, call
from actors.scanner import GetScannerStatus, ScanInput, ScannerActor, TestScanner, TriggerScan
from actors.supervisor import ChildSpec, Supervisor
from controller.clock import VirtualClock
from controller.config import ScannerConfig, parse_config
from controller.supervision import Backoff, RestartIntensity
from sim.scanner import TcpScannerSimulator, demo_codes
from tests.actors.probe import Probe
from tests.actors.settle import settle


def config(port: int, **extra: str) -> ScannerConfig:
    lines = "".join(f"{k} = {v}\n" for k, v in extra.items())
    text = f'[station]\nid = "t"\nname = "t"\n[[scanners]]\nname = "in"\nport = {port}\n{lines}'
    return parse_config(text, "t.toml").scanners[0]



@pytest.fixture
def reader() -> Iterator[TcpScannerSimulator]:
    with TcpScannerSimulator(port=0) as sim:
        yield sim


def watch(runtime: Runtime) -> Any:
    probe = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(["device.scanner.*", "input.scanner.*"], probe)
    return probe


def test_codes_cross_the_input_boundary_with_every_byte(
        runtime: Runtime, vclock: VirtualClock, reader: TcpScannerSimulator) -> None:
    events = watch(runtime)
    ref = ScannerActor.start(runtime, "scanner:in", config(reader.port, role='"REMOVE"'))
    settle(runtime, vclock, lambda: reader.connections == 1)
    codes = demo_codes(3)
    for code in codes:
        reader.emit(code)
    settle(runtime, vclock, lambda: call(runtime, ref, GetScannerStatus()).reads == 3)
    seen = events.proxy().events.get()
    reads = [e.data for e in seen if e.topic == "device.scanner.in.read"]
    assert [r["code"].encode("latin-1") for r in reads] == codes  # ]d2 and GS intact
    assert {r["role"] for r in reads} == {"REMOVE"}
    # Not journaled as reads: the traceability actor journals its judgement, with the text.
    assert not any(e.durable for e in seen if e.topic == "device.scanner.in.read")
    inputs = [e.data for e in seen if e.topic == "input.scanner.in"]
    assert inputs == [ScanInput(code=c.decode("latin-1")) for c in codes]


def test_triggered_dataman_reads_on_demand_and_answers_a_test(
        runtime: Runtime, vclock: VirtualClock) -> None:
    with TcpScannerSimulator(port=0, mode="triggered", extended=True) as reader:
        ref = ScannerActor.start(runtime, "scanner:in", config(
            reader.port, model='"COGNEX_DATAMAN"', triggered="true"))
        settle(runtime, vclock, lambda: reader.connections == 1)
        reader.emit(b"]d2010950110102091721ABC")
        assert call(runtime, ref, TriggerScan()) is True
        settle(runtime, vclock, lambda: call(runtime, ref, GetScannerStatus()).reads == 1)
        call(runtime, ref, TriggerScan())  # nothing queued: the reader answers NOREAD
        settle(runtime, vclock, lambda: call(runtime, ref, GetScannerStatus()).no_reads == 1)
        assert call(runtime, ref, TestScanner())["answer"]


def test_a_free_running_reader_cannot_be_triggered(
        runtime: Runtime, vclock: VirtualClock, reader: TcpScannerSimulator) -> None:
    ref = ScannerActor.start(runtime, "scanner:in", config(reader.port))
    with pytest.raises(ValueError, match="free-running"):
        call(runtime, ref, TriggerScan())


def test_garbage_is_counted_and_good_codes_keep_flowing(
        runtime: Runtime, vclock: VirtualClock, reader: TcpScannerSimulator) -> None:
    ref = ScannerActor.start(runtime, "scanner:in", config(reader.port))
    settle(runtime, vclock, lambda: reader.connections == 1)
    reader.send_raw(b"x" * 5000 + b"\r\n")  # longer than any code
    reader.emit(demo_codes(1)[0])
    settle(runtime, vclock, lambda: call(runtime, ref, GetScannerStatus()).reads == 1)
    status = call(runtime, ref, GetScannerStatus())
    assert status.malformed == 1 and status.state == "UP"


def test_a_lost_reader_goes_down_and_comes_back(
        runtime: Runtime, vclock: VirtualClock, reader: TcpScannerSimulator) -> None:
    Supervisor.start(runtime, "devices",
                     [ChildSpec.of(ScannerActor, "scanner:in", config(reader.port))],
                     intensity=RestartIntensity(100, 60.0),
                     backoff=Backoff(min_s=0.2, max_s=0.5, jitter=0.0, stable_s=30.0))
    settle(runtime, vclock, lambda: runtime.health.state("scanner:in") == HealthState.UP)
    reader.stop()
    settle(runtime, vclock, lambda: runtime.health.state("scanner:in") == HealthState.DOWN)
    reader.start()
    settle(runtime, vclock, lambda: runtime.health.state("scanner:in") == HealthState.UP)
