"""The OPC-UA PLC simulator: its tags, the PLC program script, restarts and the process form."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.opcua.client import OpcuaClient, OpcuaTag
from drivers.opcua.values import Value
from sim.opcua_plc import LINE1_TAGS, OpcuaPlcSimulator, OpcuaScript
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim() -> Iterator[OpcuaPlcSimulator]:
    with OpcuaPlcSimulator() as simulator:
        yield simulator


@pytest.fixture
def client_for(sim: OpcuaPlcSimulator) -> Iterator[Callable[..., OpcuaClient]]:
    """client_for(tag names...) -> a connected client binding them under their own names."""
    clients: list[OpcuaClient] = []

    def make(*names: str, changes: list[tuple[str, Value]] | None = None) -> OpcuaClient:
        record = changes if changes is not None else []
        tags = [
            OpcuaTag(name=name, node=sim.node_id(name), type=sim.tags[name], queue_size=10)
            for name in names
        ]
        client = OpcuaClient(sim.endpoint, tags, on_change=lambda n, v: record.append((n, v)),
                             on_lost=print)
        clients.append(client)
        client.connect()
        return client

    yield make
    for client in clients:
        client.close()


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        ("PartPresent", True),
        ("OperatingMode", -2),
        ("FaultCode", 65535),
        ("Speed", -(2**31)),
        ("CycleCounter", 2**32 - 1),
        ("Pressure", 6.5),
        ("Temperature", 21.123456789),
        ("SerialNumber", "SN-ü-1"),
    ],
)
def test_set_values_are_what_clients_read(
    sim: OpcuaPlcSimulator, client_for: Callable[..., OpcuaClient], tag: str, value: Value
) -> None:
    sim.set(tag, value)
    assert sim.get(tag) == value
    assert client_for(tag).read([tag]) == [(tag, value)]


def test_get_sees_client_writes(
    sim: OpcuaPlcSimulator, client_for: Callable[..., OpcuaClient]
) -> None:
    client = client_for("Ack", "ResultCode", "RecipeName")
    client.write("Ack", True)
    client.write("ResultCode", 17)
    client.write("RecipeName", "R-42")
    assert (sim.get("Ack"), sim.get("ResultCode"), sim.get("RecipeName")) == (True, 17, "R-42")


def test_set_refuses_unknown_tags_and_values_that_do_not_fit(sim: OpcuaPlcSimulator) -> None:
    sim.set("FaultCode", 9)
    with pytest.raises(KeyError, match="Nope"):
        sim.set("Nope", 1)
    with pytest.raises(ValueError, match="does not fit uint16"):
        sim.set("FaultCode", -1)
    with pytest.raises(ValueError, match="Bad status"):
        sim.set_bad("FaultCode", "Good")
    assert sim.get("FaultCode") == 9


def test_node_ids_and_tags_describe_the_address_space(sim: OpcuaPlcSimulator) -> None:
    assert sim.node_id("PartPresent") == f"ns={sim.namespace_index};s=Line1.PartPresent"
    assert sim.node_id("Tags.Tag07") == f"ns={sim.namespace_index};s=Line1.Tags.Tag07"
    assert sim.endpoint == f"opc.tcp://127.0.0.1:{sim.port}/takt/plc"
    assert sim.tags["Temperature"] == "float64" and sim.tags["Heartbeat"] == "uint16"
    assert len(sim.tags) == len(LINE1_TAGS) >= 40


def test_script_runs_a_part_cycle_when_release_is_written(
    sim: OpcuaPlcSimulator, client_for: Callable[..., OpcuaClient]
) -> None:
    sim.set("CycleCounter", 0)
    sim.set("Release", False)
    changes: list[tuple[str, Value]] = []
    client = client_for("PartPresent", "ClampClosed", "Release", "CycleCounter", "Heartbeat",
                        changes=changes)
    beat = sim.get("Heartbeat")
    script = OpcuaScript(sim, heartbeat_s=0.02, part_interval_s=0.05, clamp_delay_s=0.05).start()
    try:
        wait_for(lambda: sim.get("ClampClosed") is True)
        assert (sim.get("PartPresent"), sim.get("CycleCounter")) == (True, 0)
        client.write("Release", True)
        wait_for(lambda: sim.get("CycleCounter") == 1)
        wait_for(lambda: sim.get("Release") is False)

        def after_release() -> list[tuple[str, Value]]:
            order = [change for change in changes if change[0] != "Heartbeat"]
            released = ("Release", True)
            return order[order.index(released) + 1 :] if released in order else []

        # A subscriber sees the clamp open, the part leave, the count and Release taken back
        # (OPC-UA keeps the order per tag, not across tags).
        cycle = {
            ("ClampClosed", False), ("PartPresent", False), ("CycleCounter", 1), ("Release", False)
        }
        wait_for(lambda: cycle <= set(after_release()))
        wait_for(lambda: sim.get("Heartbeat") != beat)
        wait_for(lambda: sim.get("PartPresent") is True)  # the next part arrives
    finally:
        script.stop()
    script.stop()


def test_restart_comes_back_on_the_same_port_with_start_values() -> None:
    with OpcuaPlcSimulator() as sim:
        script = OpcuaScript(sim).start()
        port = sim.port
        sim.set("RecipeName", "changed")
        sim.stop()
        sim.stop()
        assert not sim.running
        script.stop()  # already stopped with the simulator
        assert sim.start() == port
        assert sim.get("RecipeName") == "default"
        with pytest.raises(RuntimeError, match="already running"):
            sim.start()


def test_use_after_stop_is_a_clear_error() -> None:
    sim = OpcuaPlcSimulator()
    sim.start()
    sim.stop()
    with pytest.raises(RuntimeError, match="not running"):
        sim.get("Speed")


def test_cli_prints_ready_and_stops_on_sigterm() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "sim.opcua_plc", "--port", "0", "--demo"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as proc:
        run_and_stop(proc)


def run_and_stop(proc: subprocess.Popen[str]) -> None:
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "no READY line"
        word, port = proc.stdout.readline().split()
        assert word == "READY" and int(port) > 0
        seen = threading.Event()
        client = OpcuaClient(
            f"opc.tcp://127.0.0.1:{port}/takt/plc",
            [OpcuaTag(name="beat", node="ns=2;s=Line1.Heartbeat", type="uint16")],
            on_change=lambda _n, v: seen.set() if v else None, on_lost=print,
        )
        client.connect()
        try:
            assert seen.wait(10), "the demo heartbeat never counted"
        finally:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
