"""/ws/robots/<robot>: one robot's live frames, and a relay between the clients of that robot
(seed 003's WebSocket per device_id).

Authenticate as on /ws (Authorization header, `?token=`, or a first message
`{"token": "..."}`). The server then says `{"message": "Websocket Connected Successfully to
<device_id>."}`, sends the last known frame of each robot topic, then every new one:

  {"topic": "state|tf|odom|map|goal_pose|goal|alert", "source": "robot", "seq", "ts", "data"}

A client may send `{"topic": "tf|odom|map|goal_pose", "data": {...}}`: it is relayed to the
other clients of the same robot only, as `{"topic", "source": "client", "from": <who>, "ts",
"data"}`; it is not a command (commands are REST). Anything else is answered with
`{"type": "error", "detail": ...}` and relayed to nobody. A client too slow to keep up loses
frames and is told how many (`{"type": "gap", "dropped": n}`).
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
import trio
from quart import Blueprint, websocket

from actors.bus import Event, TrioSubscription
from api.http import facade
from api.problems import Problem
from api.robots import resolve_robot
from api.security import authenticate, websocket_token
from controller.access import Principal
from controller.timefmt import rfc3339

__all__ = ["blueprint"]

blueprint = Blueprint("robot_ws", __name__)

QUEUE = 512
AUTH_TIMEOUT_S = 10.0
MAX_MESSAGE_BYTES = 64 * 1024
_ROBOT_TOPICS = ("state", "tf", "odom", "map", "goal_pose", "goal", "alert")

_ENC = msgspec.json.Encoder()


class _Token(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: str


class RelayMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    topic: Literal["tf", "odom", "map", "goal_pose"]
    data: dict[str, Any] | None


_TOKEN = msgspec.json.Decoder(_Token)
_RELAY = msgspec.json.Decoder(RelayMessage)


async def _error(detail: str) -> None:
    await websocket.send(_ENC.encode({"type": "error", "detail": detail}))


async def _principal() -> Principal | None:
    token = websocket_token()
    with trio.move_on_after(AUTH_TIMEOUT_S):
        while token is None:
            raw = await websocket.receive()
            try:
                token = _TOKEN.decode(raw.encode() if isinstance(raw, str) else raw).token
            except (msgspec.DecodeError, msgspec.ValidationError):
                await _error('authenticate first: send {"token": "..."}')
    try:
        return await authenticate(token)
    except Problem as exc:
        await _error(exc.detail)
        return None


def _frame(event: Event) -> bytes:
    return _ENC.encode({"topic": event.topic.rpartition(".")[2], "source": "robot",
                        "seq": event.seq, "ts": rfc3339(event.ts_us), "data": event.data})


async def _forward(sub: TrioSubscription, after_seq: int) -> None:
    reported = 0
    async for event in sub:
        if event.seq <= after_seq:
            continue  # in the snapshot already
        if sub.dropped != reported:
            await websocket.send(_ENC.encode({"type": "gap", "dropped": sub.dropped - reported}))
            reported = sub.dropped
        await websocket.send(_frame(event))


async def _relayed(receive: trio.MemoryReceiveChannel[bytes]) -> None:
    async for message in receive:
        await websocket.send(message)


@blueprint.websocket("/ws/robots/<robot>")
async def robot_ws(robot: str) -> None:
    await websocket.accept()
    principal = await _principal()
    if principal is None:
        await websocket.close(1008, "authentication failed")
        return
    try:
        name, device_id = await resolve_robot(robot)
    except Problem as exc:
        await _error(exc.detail)
        await websocket.close(1008, "no such robot")
        return
    f = facade()
    bus, hub, clock = f.runtime.bus, f.robot_relay, f.runtime.clock
    patterns = [f"device.robot.{name}.{topic}" for topic in _ROBOT_TOPICS]
    sub = bus.subscribe_trio(patterns, maxsize=QUEUE, name=f"ws-robot-{name}")
    member, receive = hub.join(name)
    try:
        await websocket.send(_ENC.encode(
            {"message": f"Websocket Connected Successfully to {device_id or name}."}))
        last, retained = bus.snapshot(patterns)
        for event in retained:
            await websocket.send(_frame(event))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_forward, sub, last)
            nursery.start_soon(_relayed, receive)
            while True:
                raw = await websocket.receive()
                data = raw.encode() if isinstance(raw, str) else raw
                if len(data) > MAX_MESSAGE_BYTES:
                    await _error(f"a message may hold at most {MAX_MESSAGE_BYTES} bytes")
                    continue
                try:
                    msg = _RELAY.decode(data)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    await _error(f"not a relay message ({exc}); send "
                                 '{"topic": "tf|odom|map|goal_pose", "data": {...}}')
                    continue
                hub.relay(name, member, _ENC.encode({
                    "topic": msg.topic, "source": "client", "from": principal.name,
                    "ts": rfc3339(clock.now_us()), "data": msg.data}))
    finally:
        hub.leave(name, member)
        bus.unsubscribe(sub)
