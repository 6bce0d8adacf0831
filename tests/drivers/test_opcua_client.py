"""The OPC-UA client against the simulated PLC: a real asyncua server on loopback."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from drivers.errors import DeviceUnavailable
from drivers.opcua.client import (
    MonitoringRefused,
    OpcuaClient,
    OpcuaTag,
    TypeMismatch,
    UnknownNodes,
    WriteRefused,
)
from drivers.opcua.values import Value
from sim.opcua_plc import LINE1_TAGS, OpcuaPlcSimulator
from tests.waiting import wait_for


class Recorder:
    """Collects what a client's callbacks report, from the client's loop thread."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, Value]] = []
        self.lost: list[str] = []
        self.malformed: list[str] = []

    def on_change(self, name: str, value: Value) -> None:
        self.changes.append((name, value))

    def values(self, name: str) -> list[Value]:
        return [value for tag, value in list(self.changes) if tag == name]


@pytest.fixture(scope="module")
def sim() -> Iterator[OpcuaPlcSimulator]:
    with OpcuaPlcSimulator() as simulator:
        yield simulator


@pytest.fixture
def own_sim() -> Iterator[OpcuaPlcSimulator]:
    """A simulator this test may stop and restart."""
    with OpcuaPlcSimulator() as simulator:
        yield simulator


Connect = Callable[..., tuple[OpcuaClient, Recorder]]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """connect(sim_or_endpoint, tags, **kw) -> a connected client and its recorder."""
    clients: list[OpcuaClient] = []

    def make(target: OpcuaPlcSimulator | str, tags: list[OpcuaTag], **kw: object):
        recorder = Recorder()
        endpoint = target if isinstance(target, str) else target.endpoint
        client = OpcuaClient(
            endpoint, tags, on_change=recorder.on_change, on_lost=recorder.lost.append,
            on_malformed=recorder.malformed.append, **kw,  # type: ignore[arg-type]
        )
        clients.append(client)
        client.connect()
        return client, recorder

    yield make
    for client in clients:
        client.close()


def tag(sim: OpcuaPlcSimulator, name: str, plc_tag: str, type_: str, **kw: object) -> OpcuaTag:
    return OpcuaTag(name=name, node=sim.node_id(plc_tag), type=type_, **kw)  # type: ignore[arg-type]


def test_subscription_delivers_current_value_then_each_change(
    sim: OpcuaPlcSimulator, connect: Connect
) -> None:
    sim.set("Speed", 5)
    sim.set("Tags.Tag00", 1.5)
    client, rec = connect(sim, [
        tag(sim, "speed", "Speed", "int32"),
        # A second publishing interval means a second subscription; both must deliver.
        tag(sim, "bank0", "Tags.Tag00", "float64", publishing_interval_ms=20),
    ])
    assert client.connected
    wait_for(lambda: rec.values("speed") == [5] and rec.values("bank0") == [1.5])
    sim.set("Speed", 6)
    wait_for(lambda: rec.values("speed") == [5, 6])
    sim.set("Speed", -7)
    sim.set("Tags.Tag00", 2.5)
    wait_for(lambda: rec.values("speed")[-1:] == [-7] and rec.values("bank0")[-1:] == [2.5])
    assert rec.values("speed") == [5, 6, -7]
    assert rec.values("bank0") == [1.5, 2.5]


def test_queue_keeps_changes_between_publishes(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    sim.set("Tags.Tag02", 0.0)
    _, rec = connect(sim, [
        tag(sim, "bank2", "Tags.Tag02", "float64", publishing_interval_ms=200, queue_size=10)
    ])
    wait_for(lambda: rec.values("bank2") == [0.0])
    for value in (1.0, 2.0, 3.0):  # mostly within one publishing interval
        sim.set("Tags.Tag02", value)
    wait_for(lambda: rec.values("bank2")[-1:] == [3.0])
    assert rec.values("bank2") == [0.0, 1.0, 2.0, 3.0]


def test_absolute_deadband_drops_small_changes_and_passes_large_ones(
    sim: OpcuaPlcSimulator, connect: Connect
) -> None:
    sim.set("Temperature", 20.0)
    _, rec = connect(sim, [
        tag(sim, "temp", "Temperature", "float64", deadband_type="absolute", deadband=1.0)
    ])
    wait_for(lambda: rec.values("temp") == [20.0])
    sim.set("Temperature", 20.5)
    sim.set("Temperature", 22.0)
    wait_for(lambda: rec.values("temp")[-1:] == [22.0])
    assert rec.values("temp") == [20.0, 22.0]


def test_percent_deadband_needs_an_eurange(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    _, rec = connect(sim, [
        tag(sim, "temp", "Temperature", "float64", deadband_type="percent", deadband=5.0)
    ])
    wait_for(lambda: len(rec.values("temp")) == 1)
    with pytest.raises(MonitoringRefused, match="EURange") as refused:
        connect(sim, [
            tag(sim, "pressure", "Pressure", "float32", deadband_type="percent", deadband=5.0)
        ])
    assert list(refused.value.problems) == ["pressure"]


def test_poll_reads_unsubscribed_tags_in_one_go(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    sim.set("RecipeName", "A7")
    sim.set("Pressure", 6.25)
    sim.set("Speed", 11)
    client, rec = connect(sim, [
        tag(sim, "recipe", "RecipeName", "string", subscribe=False),
        tag(sim, "pressure", "Pressure", "float32", subscribe=False),
        tag(sim, "speed", "Speed", "int32"),
    ])
    assert client.poll() == [("recipe", "A7"), ("pressure", 6.25)]
    sim.set("RecipeName", "B8")
    assert client.poll() == [("recipe", "B8"), ("pressure", 6.25)]
    assert client.read(["speed", "recipe"]) == [("speed", 11), ("recipe", "B8")]
    wait_for(lambda: rec.values("speed") == [11])
    assert rec.values("recipe") == [] and rec.values("pressure") == []


def test_writes_reach_the_plc(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    client, _ = connect(sim, [
        tag(sim, "recipe", "RecipeName", "string"),
        tag(sim, "beat", "TakeHeartbeat", "uint16", subscribe=False),
        tag(sim, "release", "Release", "bool"),
        tag(sim, "bank1", "Tags.Tag01", "float64"),
    ])
    client.write("recipe", "B2")
    client.write("beat", 65535)
    client.write("release", True)
    client.write("bank1", -0.125)
    assert sim.get("RecipeName") == "B2"
    assert sim.get("TakeHeartbeat") == 65535
    assert sim.get("Release") is True
    assert sim.get("Tags.Tag01") == -0.125
    client.write("release", False)


def test_out_of_range_write_is_refused_before_it_is_sent(
    sim: OpcuaPlcSimulator, connect: Connect
) -> None:
    sim.set("TakeHeartbeat", 3)
    client, _ = connect(sim, [tag(sim, "beat", "TakeHeartbeat", "uint16", subscribe=False)])
    with pytest.raises(ValueError, match="70000 does not fit uint16"):
        client.write("beat", 70000)
    with pytest.raises(KeyError, match="nope"):
        client.write("nope", 1)
    assert sim.get("TakeHeartbeat") == 3


def test_write_to_a_read_only_node_is_refused(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    sim.set("PartPresent", False)
    client, _ = connect(sim, [tag(sim, "part", "PartPresent", "bool", subscribe=False)])
    with pytest.raises(WriteRefused, match=r"part .*BadNotWritable"):
        client.write("part", True)
    assert sim.get("PartPresent") is False
    assert client.connected


def test_browse_lists_the_line_variables(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    sim.set("RecipeName", "C3")
    client, _ = connect(sim, [])
    found = {t.path: t for t in client.browse()}
    assert set(found) == {f"Line1/{name.replace('.', '/')}" for name in LINE1_TAGS}
    part, release = found["Line1/PartPresent"], found["Line1/Release"]
    assert (part.node, part.data_type, part.writable) == (sim.node_id("PartPresent"), "bool", False)
    assert (release.data_type, release.writable) == ("bool", True)
    assert (found["Line1/Pressure"].data_type, found["Line1/CycleCounter"].data_type) == (
        "float32", "uint32"
    )
    assert found["Line1/RecipeName"].value == "C3"
    assert found["Line1/Tags/Tag19"].writable
    assert len(client.browse(limit=5)) == 5
    assert client.browse(max_depth=1) == []  # only the Line1 folder is one level down


def test_unknown_nodes_are_all_named(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    ns = sim.namespace_index
    with pytest.raises(UnknownNodes) as unknown:
        connect(sim, [
            tag(sim, "speed", "Speed", "int32"),
            OpcuaTag(name="ghost", node=f"ns={ns};s=Line1.Ghost", type="bool"),
            OpcuaTag(name="folder", node=f"ns={ns};s=Line1", type="bool"),
            OpcuaTag(name="elsewhere", node="nsu=urn:nowhere;i=5", type="bool"),
        ])
    problems = unknown.value.problems
    assert problems["ghost"] == f"node ns={ns};s=Line1.Ghost does not exist"
    assert "not a Variable" in problems["folder"]
    assert "urn:nowhere" in problems["elsewhere"]
    assert "speed" not in problems


def test_namespace_uri_node_ids_resolve(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    sim.set("Speed", 77)
    client, rec = connect(sim, [
        OpcuaTag(name="speed", node="nsu=urn:takt:sim:plc;s=Line1.Speed", type="int32")
    ])
    wait_for(lambda: rec.values("speed") == [77])
    assert client.read(["speed"]) == [("speed", 77)]


def test_declared_type_must_match_the_node(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    with pytest.raises(TypeMismatch) as mismatch:
        connect(sim, [
            tag(sim, "pressure", "Pressure", "float64"),
            tag(sim, "count", "CycleCounter", "int32"),
            tag(sim, "part", "PartPresent", "bool"),
        ])
    problems = mismatch.value.problems
    assert set(problems) == {"pressure", "count"}
    assert "holds Float" in problems["pressure"] and "'float32'" in problems["pressure"]
    assert "'uint32'" in problems["count"]


def test_failed_connect_leaves_no_thread_behind(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    with pytest.raises(TypeMismatch):
        connect(sim, [tag(sim, "part", "PartPresent", "int16")], name="leaky")
    assert not [t for t in threading.enumerate() if t.name.startswith("leaky")]


def test_bad_quality_is_reported_as_malformed(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    sim.set("FaultCode", 4)
    _, rec = connect(sim, [tag(sim, "fault", "FaultCode", "uint16")])
    wait_for(lambda: rec.values("fault") == [4])
    sim.set_bad("FaultCode", "BadSensorFailure")
    wait_for(lambda: len(rec.malformed) == 1)
    assert rec.malformed[0].startswith("fault (") and "BadSensorFailure" in rec.malformed[0]
    sim.set("FaultCode", 5)
    wait_for(lambda: rec.values("fault") == [4, 5])


def test_unreachable_server_is_device_unavailable(own_sim: OpcuaPlcSimulator) -> None:
    endpoint = own_sim.endpoint
    own_sim.stop()
    client = OpcuaClient(endpoint, [], on_change=print, on_lost=print, timeout_s=1.0)
    with pytest.raises(DeviceUnavailable, match=str(own_sim.port)):
        client.connect()
    assert not client.connected
    with pytest.raises(DeviceUnavailable):
        client.read([])


def test_stopped_server_reports_the_link_lost_once(
    own_sim: OpcuaPlcSimulator, connect: Connect
) -> None:
    client, rec = connect(own_sim, [tag(own_sim, "part", "PartPresent", "bool")])
    wait_for(lambda: rec.values("part") == [False])
    own_sim.stop()
    wait_for(lambda: bool(rec.lost))
    assert not client.connected
    with pytest.raises(DeviceUnavailable, match="link lost"):
        client.poll()
    client.close()
    assert len(rec.lost) == 1


def test_close_from_the_lost_callback_does_not_hang(own_sim: OpcuaPlcSimulator) -> None:
    reasons: list[str] = []

    def on_lost(reason: str) -> None:
        reasons.append(reason)
        client.close()  # as an owner reacting at once would

    client = OpcuaClient(own_sim.endpoint, [tag(own_sim, "part", "PartPresent", "bool")],
                         on_change=lambda *_: None, on_lost=on_lost, name="selfclose")
    client.connect()
    own_sim.stop()
    wait_for(lambda: bool(reasons))
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == "selfclose-opcua"])
    client.close()
    assert len(reasons) == 1 and not client.connected


class FreezableRelay:
    """A TCP relay that can go silent while keeping its connections open (a hung PLC)."""

    def __init__(self, port: int) -> None:
        self._target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.frozen = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                inbound, _ = self._listener.accept()
            except OSError:
                return
            outbound = socket.create_connection(("127.0.0.1", self._target))
            self._sockets += [inbound, outbound]
            threading.Thread(target=self._pump, args=(inbound, outbound), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        peer = {a: b, b: a}
        while not self._closed.is_set():
            readable, _, _ = select.select([a, b], [], [], 0.05)
            for sock in readable:
                if self.frozen.is_set():
                    continue
                try:
                    data = sock.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                peer[sock].sendall(data)
            if self.frozen.is_set():
                time.sleep(0.01)

    def close(self) -> None:
        self._closed.set()
        for sock in self._sockets:
            sock.close()


def test_silent_server_is_noticed_without_a_request(
    sim: OpcuaPlcSimulator, connect: Connect
) -> None:
    relay = FreezableRelay(sim.port)
    try:
        client, rec = connect(
            f"opc.tcp://127.0.0.1:{relay.port}/takt/plc",
            [tag(sim, "part", "PartPresent", "bool")],
            watchdog_s=0.3,
        )
        wait_for(lambda: len(rec.values("part")) == 1)
        relay.frozen.set()
        wait_for(lambda: bool(rec.lost))
        assert not client.connected
        client.close()
        assert len(rec.lost) == 1
    finally:
        relay.close()


def test_restarted_server_on_the_same_port_serves_a_new_client(
    own_sim: OpcuaPlcSimulator, connect: Connect
) -> None:
    first, rec = connect(own_sim, [tag(own_sim, "speed", "Speed", "int32")])
    wait_for(lambda: rec.values("speed") == [0])
    port = own_sim.port
    own_sim.stop()
    wait_for(lambda: bool(rec.lost))
    first.close()
    assert own_sim.start() == port
    own_sim.set("Speed", 42)
    _, rec2 = connect(own_sim, [tag(own_sim, "speed", "Speed", "int32")])
    wait_for(lambda: rec2.values("speed") == [42])
    own_sim.set("Speed", 43)
    wait_for(lambda: rec2.values("speed") == [42, 43])
    assert rec.values("speed") == [0]


def test_close_stops_callbacks(sim: OpcuaPlcSimulator, connect: Connect) -> None:
    sim.set("Tags.Tag05", 1.0)
    closed, rec = connect(sim, [tag(sim, "bank5", "Tags.Tag05", "float64")])
    _, witness = connect(sim, [tag(sim, "bank5", "Tags.Tag05", "float64")])
    wait_for(lambda: rec.values("bank5") == [1.0] and witness.values("bank5") == [1.0])
    closed.close()
    closed.close()
    assert not closed.connected
    sim.set("Tags.Tag05", 2.0)
    wait_for(lambda: witness.values("bank5") == [1.0, 2.0])
    assert rec.values("bank5") == [1.0]
    assert rec.lost == []


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"type": "int8"}, "unknown value type"),
        ({"node": "Line1.Speed"}, "is not a NodeId"),
        ({"type": "bool", "deadband_type": "absolute", "deadband": 1.0}, "applies to numbers"),
        ({"deadband_type": "relative"}, "deadband_type"),
        ({"deadband_type": "percent", "deadband": 150.0}, "0..100"),
    ],
)
def test_bad_bindings_are_refused_before_connecting(kw: dict[str, object], match: str) -> None:
    fields: dict[str, object] = {"name": "x", "node": "ns=2;s=Line1.Speed", "type": "int32"}
    with pytest.raises(ValueError, match=match):
        OpcuaClient("opc.tcp://127.0.0.1:4840", [OpcuaTag(**{**fields, **kw})],  # type: ignore[arg-type]
                    on_change=print, on_lost=print)


def test_duplicate_names_and_bad_endpoints_are_refused() -> None:
    speed = OpcuaTag(name="x", node="ns=2;s=Line1.Speed", type="int32")
    with pytest.raises(ValueError, match="bound twice"):
        OpcuaClient("opc.tcp://127.0.0.1:4840", [speed, speed], on_change=print, on_lost=print)
    with pytest.raises(ValueError, match=r"opc\.tcp"):
        OpcuaClient("http://127.0.0.1:4840", [], on_change=print, on_lost=print)
