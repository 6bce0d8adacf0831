"""OPC-UA PLC simulator: an asyncua server on its own loop thread with a cell PLC's tags.

The server loads only the lean standard address space of `sim.opcua_space`, in milliseconds
rather than asyncua's seconds, so tests and `takt run` start the simulator at once.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, NamedTuple, Self, TypeVar

from asyncua import Server, ua
from asyncua.common.callback import CallbackType

from drivers.loop_thread import LoopThread
from drivers.opcua.client import quiet_asyncua_logging
from drivers.opcua.serving import stop_server
from drivers.opcua.values import Value, from_opcua, to_variant, variant_for
from sim.cli import serve_until_stopped
from sim.opcua_space import CoreInternalServer

__all__ = [
    "LINE1_TAGS",
    "NAMESPACE_URI",
    "OpcuaPlcSimulator",
    "OpcuaScript",
    "SimTag",
    "demo_script",
    "main",
]

NAMESPACE_URI = "urn:takt:sim:plc"
_CALL_TIMEOUT_S = 5.0
_T = TypeVar("_T")


class SimTag(NamedTuple):
    """One PLC variable: Takt value type, whether clients may write it, its start value."""

    type: str
    writable: bool = False
    initial: Value | None = None
    eu_range: tuple[float, float] | None = None


LINE1_TAGS: dict[str, SimTag] = {
    # Part flow: the PLC reports, Takt releases.
    "PartPresent": SimTag("bool"),
    "ClampClosed": SimTag("bool"),
    "Release": SimTag("bool", writable=True),
    "Reject": SimTag("bool", writable=True),
    "CycleCounter": SimTag("uint32"),
    "GoodCount": SimTag("uint32"),
    "RejectCount": SimTag("uint32"),
    "CycleTime": SimTag("float32"),
    "PartType": SimTag("string", initial="HX-200"),
    "SerialNumber": SimTag("string"),
    # Cell status and the watchdog both ways.
    "Heartbeat": SimTag("uint16"),
    "TakeHeartbeat": SimTag("uint16", writable=True),
    "TaktReady": SimTag("bool", writable=True),
    "OperatingMode": SimTag("int16", initial=1),  # 0 manual, 1 automatic, 2 setup
    "EmergencyStop": SimTag("bool"),
    "DoorClosed": SimTag("bool", initial=True),
    "LightCurtainClear": SimTag("bool", initial=True),
    "FaultCode": SimTag("uint16"),
    # Process values.
    "Temperature": SimTag("float64", initial=24.0, eu_range=(0.0, 100.0)),
    "Pressure": SimTag("float32", initial=6.0),
    "Speed": SimTag("int32"),
    "RecipeName": SimTag("string", writable=True, initial="default"),
    # Four-phase handshake: the PLC requests, Takt acks, works, reports done and a result.
    "Request": SimTag("bool"),
    "RequestData": SimTag("uint32"),
    "Ack": SimTag("bool", writable=True),
    "Done": SimTag("bool", writable=True),
    "ResultCode": SimTag("uint16", writable=True),
    # A bank for benchmarks (bank_size sets how many).
    **{f"Tags.Tag{i:02d}": SimTag("float64", writable=True) for i in range(20)},
}


def _with_bank(size: int) -> dict[str, SimTag]:
    if not 0 <= size <= 1000:
        raise ValueError("bank_size must be 0..1000")
    tags = {name: tag for name, tag in LINE1_TAGS.items() if not name.startswith("Tags.")}
    tags.update({f"Tags.Tag{i:02d}": SimTag("float64", writable=True) for i in range(size)})
    return tags


class OpcuaPlcSimulator:
    """An OPC-UA server holding Line1's tags; restarts on the same port with start values."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, name: str = "plc", *,
                 bank_size: int = 20) -> None:
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise ValueError(f"name {name!r} must be letters, digits, - or _")
        self._tags = _with_bank(bank_size)
        self._host = host
        self._port = port
        self._name = name
        self._loop = LoopThread(f"opcua-plc-{name}")
        self._server: Server | None = None
        self._written: asyncio.Condition | None = None
        self._namespace = 0
        self._scripts: list[OpcuaScript] = []

    @property
    def port(self) -> int:
        """The bound port (the requested one until start() has bound a free port)."""
        return self._port

    @property
    def running(self) -> bool:
        """True between a successful start() and stop()."""
        return self._server is not None

    @property
    def endpoint(self) -> str:
        """The URL clients connect to."""
        return f"opc.tcp://{self._host}:{self._port}/takt/{self._name}"

    @property
    def namespace_index(self) -> int:
        """Index of the simulator's namespace (known once started)."""
        if not self._namespace:
            raise RuntimeError("simulator has not started")
        return self._namespace

    @property
    def tags(self) -> dict[str, str]:
        """Tag name (e.g. "PartPresent", "Tags.Tag00") -> Takt value type."""
        return {name: tag.type for name, tag in self._tags.items()}

    def node_id(self, tag: str) -> str:
        """The NodeId string of a tag, e.g. "ns=2;s=Line1.PartPresent"."""
        self._spec(tag)
        return f"ns={self.namespace_index};s=Line1.{tag}"

    def start(self) -> int:
        """Listen and return the bound port; after stop(), restarts on the same port."""
        if self._loop.running:
            raise RuntimeError("simulator already running")
        quiet_asyncua_logging()
        self._loop.start()
        try:
            self._loop.run(self._serve(), _CALL_TIMEOUT_S)
        except BaseException:
            self._loop.stop()
            raise
        return self._port

    def stop(self) -> None:
        """Stop scripts, close every client connection and the listener; safe twice."""
        for script in list(self._scripts):
            script.stop()
        if not self._loop.running:
            return
        try:
            self._loop.run(self._shutdown(), _CALL_TIMEOUT_S)
        finally:
            self._server = None
            self._loop.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def set(self, tag: str, value: Value) -> None:
        """Set a tag as the PLC program would; subscribed clients get the change."""
        variant = to_variant(self._spec(tag).type, value)
        self._call(self._write(tag, variant))

    def set_bad(self, tag: str, status: str = "BadSensorFailure") -> None:
        """Report a tag's value as Bad (a failed sensor...); the next set() makes it good."""
        self._spec(tag)
        code = getattr(ua.StatusCodes, status, None)
        if not isinstance(code, int) or not ua.StatusCode(code).is_bad():
            raise ValueError(f"{status!r} is not a Bad status code name")
        self._call(self._write(tag, ua.Variant(), ua.StatusCode(code)))

    def get(self, tag: str) -> Value:
        """Current value of a tag, including client writes; FrameError while it is Bad."""
        self._spec(tag)
        return self._call(self._read_async(tag))

    # -- loop side ---------------------------------------------------------------------------

    async def _serve(self) -> None:
        server = Server(iserver=CoreInternalServer())
        server.iserver.disabled_clock = True  # its 1 s sleep would also delay stop() by 1 s
        await server.init()
        await server.set_application_uri(f"urn:takt:sim:server:{self._name}")
        server.set_server_name(f"Takt simulated PLC {self._name}")
        server.set_endpoint(self.endpoint)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_attribute_value_callback(
            ua.NodeId(ua.ObjectIds.Server_ServerStatus_CurrentTime), _current_time
        )
        self._namespace = await server.register_namespace(NAMESPACE_URI)
        await _add_line1(server, self._namespace, self._tags)
        self._written = asyncio.Condition()
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_client_write)
        try:
            await server.start()
        except OSError as exc:
            raise OSError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
        assert server.bserver is not None
        # Bound by the server itself, so port 0 is race-free; reused by the next start().
        self._port = server.bserver.port
        self._server = server

    async def _shutdown(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await stop_server(server)

    def _node(self, tag: str) -> ua.NodeId:
        return ua.NodeId(f"Line1.{tag}", self._namespace)

    def _read_now(self, tag: str) -> Value:
        server = self._server
        if server is None:
            raise RuntimeError("simulator is not running")
        return from_opcua(self._spec(tag).type, server.read_attribute_value(self._node(tag)).Value)

    async def _read_async(self, tag: str) -> Value:
        return self._read_now(tag)

    async def _write(
        self, tag: str, variant: ua.Variant, status: ua.StatusCode | None = None
    ) -> None:
        server = self._server
        if server is None:
            raise RuntimeError("simulator is not running")
        now = datetime.now(UTC)
        quality = status if status is not None else ua.StatusCode()
        value = ua.DataValue(variant, StatusCode=quality, SourceTimestamp=now, ServerTimestamp=now)
        await server.write_attribute_value(self._node(tag), value)
        await self._notify()

    async def _set_now(self, tag: str, value: Value) -> None:
        await self._write(tag, to_variant(self._spec(tag).type, value))

    async def _wait_until(self, tag: str, value: Value) -> None:
        """Wait (on the loop) until tag holds value, woken by every write."""
        written = self._written
        if written is None:
            raise RuntimeError("simulator is not running")
        async with written:
            await written.wait_for(lambda: self._read_now(tag) == value)

    async def _on_client_write(self, _event: object, _dispatcher: object) -> None:
        await self._notify()

    async def _notify(self) -> None:
        if self._written is not None:
            async with self._written:
                self._written.notify_all()

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        # Everything touching the address space runs on the server's loop, with client requests.
        if self._server is None:
            coro.close()
            raise RuntimeError("simulator is not running")
        return self._loop.run(coro, _CALL_TIMEOUT_S)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        async def create() -> asyncio.Task[None]:
            return asyncio.get_running_loop().create_task(coro)

        return self._call(create())

    def _attach(self, script: OpcuaScript) -> None:
        self._scripts.append(script)

    def _spec(self, tag: str) -> SimTag:
        try:
            return self._tags[tag]
        except KeyError:
            raise KeyError(f"no tag {tag!r} on the simulated PLC") from None

    def _detach(self, script: OpcuaScript) -> None:
        if script in self._scripts:
            self._scripts.remove(script)


def _current_time(_node: ua.NodeId, _attr: ua.AttributeIds) -> ua.DataValue:
    return ua.DataValue(ua.Variant(datetime.now(UTC), ua.VariantType.DateTime))


async def _add_line1(server: Server, ns: int, tags: dict[str, SimTag]) -> None:
    line = await server.nodes.objects.add_folder(
        ua.NodeId("Line1", ns), ua.QualifiedName("Line1", ns)
    )
    folders = {"": line}
    for name, tag in tags.items():
        folder_path, _, short = name.rpartition(".")
        if folder_path not in folders:
            folders[folder_path] = await line.add_folder(
                ua.NodeId(f"Line1.{folder_path}", ns), ua.QualifiedName(folder_path, ns)
            )
        initial = tag.initial
        if initial is None:
            initial = {"bool": False, "string": ""}.get(tag.type, 0)
        node = await folders[folder_path].add_variable(
            ua.NodeId(f"Line1.{name}", ns),
            ua.QualifiedName(short, ns),
            to_variant(tag.type, initial).Value,
            variant_for(tag.type),
        )
        if tag.writable:
            await node.set_writable()
        if tag.eu_range is not None:
            low, high = tag.eu_range
            await node.add_property(
                ua.NodeId(f"Line1.{name}.EURange", ns),
                ua.QualifiedName("EURange", 0),
                ua.Range(Low=low, High=high),
            )


class OpcuaScript:
    """The PLC program: a heartbeat and the part cycle, run as tasks on the server's loop.

    Part cycle: a part arrives (PartPresent), the clamp closes after clamp_delay_s, then the
    PLC waits for a client to write Release=True; it opens the clamp, the part leaves,
    CycleCounter counts up, Release is reset, and the next part comes after part_interval_s.
    """

    def __init__(
        self,
        sim: OpcuaPlcSimulator,
        *,
        heartbeat_s: float = 0.5,
        part_interval_s: float = 2.0,
        clamp_delay_s: float = 0.5,
        wander_s: float | None = None,
        seed: int = 0,
    ) -> None:
        periods = [heartbeat_s, part_interval_s, clamp_delay_s]
        if any(p <= 0 for p in periods) or (wander_s is not None and wander_s <= 0):
            raise ValueError("periods and delays must be > 0")
        self._sim = sim
        self._heartbeat_s = heartbeat_s
        self._part_interval_s = part_interval_s
        self._clamp_delay_s = clamp_delay_s
        self._wander_s = wander_s
        self._rng = random.Random(seed)
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> Self:
        """Start the heartbeat and the part cycle (and the wandering values if asked)."""
        if self._tasks:
            raise RuntimeError("script already running")
        self._sim._attach(self)
        self._tasks = [self._sim._spawn(self._heartbeat()), self._sim._spawn(self._cycles())]
        if self._wander_s is not None:
            self._tasks.append(self._sim._spawn(self._wander(self._wander_s)))
        return self

    def stop(self) -> None:
        """Cancel the tasks and wait for them; safe twice and after the simulator stopped."""
        tasks, self._tasks = self._tasks, []
        self._sim._detach(self)
        if tasks and self._sim.running:

            async def cancel() -> None:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

            self._sim._call(cancel())

    async def _heartbeat(self) -> None:
        sim = self._sim
        while True:
            await asyncio.sleep(self._heartbeat_s)
            await sim._set_now("Heartbeat", (int(sim._read_now("Heartbeat")) + 1) % 65536)

    async def _cycles(self) -> None:
        sim = self._sim
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._part_interval_s)
            started = loop.time()
            count = int(sim._read_now("CycleCounter")) + 1
            await sim._set_now("SerialNumber", f"SN{count:08d}")
            await sim._set_now("PartPresent", True)
            await asyncio.sleep(self._clamp_delay_s)
            await sim._set_now("ClampClosed", True)
            await sim._wait_until("Release", True)
            await sim._set_now("ClampClosed", False)
            await sim._set_now("PartPresent", False)
            await sim._set_now("CycleTime", loop.time() - started)
            await sim._set_now("CycleCounter", count % 2**32)
            await sim._set_now("Release", False)

    async def _wander(self, period_s: float) -> None:
        sim = self._sim
        bounds = {"Temperature": (20.0, 30.0), "Pressure": (5.5, 6.5)}
        while True:
            await asyncio.sleep(period_s)
            for tag, (low, high) in bounds.items():
                step = self._rng.uniform(-(high - low) / 20, (high - low) / 20)
                value = min(high, max(low, float(sim._read_now(tag)) + step))
                await sim._set_now(tag, value)


# -- process form ------------------------------------------------------------------------------


def demo_script(sim: OpcuaPlcSimulator) -> OpcuaScript:
    """Start the demo signals: heartbeat, part cycle, wandering temperature and pressure."""
    return OpcuaScript(sim, wander_s=1.0).start()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process; prints `READY <port>` once listening."""
    parser = argparse.ArgumentParser(prog="python -m sim.opcua_plc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4841, help="0 picks a free port")
    parser.add_argument("--name", default="plc", help="last part of the endpoint path")
    parser.add_argument("--demo", action="store_true", help="run the demo PLC program")
    args = parser.parse_args(argv)

    sim = OpcuaPlcSimulator(args.host, args.port, args.name)
    program = partial(demo_script, sim) if args.demo else None
    return serve_until_stopped(sim.start, sim.stop, program=program)


if __name__ == "__main__":
    sys.exit(main())
