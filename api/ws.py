"""/ws: the live event stream. Authenticate, subscribe to topic patterns, get a snapshot,
then every matching event as it is published.

Client -> server, one JSON object per message:
  {"token": "..."}                        (if not given as header or ?token=)
  {"subscribe": ["device.plc.*", ...]}    (replaces the previous subscription)
Server -> client: {"type", "seq", "ts", "data"} with type snapshot | bus | event | gap | error |
ready; `bus` and `event` (journal entries, topics `event.<severity>.<category>`) messages also
carry "topic" and "source". A `gap` says how many events this
client lost by reading too slowly; ask for a new snapshot by subscribing again.
"""

from __future__ import annotations

from typing import Any

import msgspec
import trio
from quart import Blueprint, websocket

from actors.bus import Event, TrioSubscription
from api.http import facade
from api.problems import Problem
from api.security import authenticate, websocket_token
from controller.access import Principal
from controller.timefmt import rfc3339
from controller.topics import check_pattern

__all__ = ["blueprint"]

blueprint = Blueprint("ws", __name__)

MAX_PATTERNS = 32
QUEUE = 2000
AUTH_TIMEOUT_S = 10.0

_ENC = msgspec.json.Encoder()


class ClientMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token: str | None = None
    subscribe: list[str] | None = None


_DECODER = msgspec.json.Decoder(ClientMessage)


def _envelope(type_: str, seq: int | None, ts_us: int, data: Any, **extra: Any) -> bytes:
    return _ENC.encode({"type": type_, "seq": seq, "ts": rfc3339(ts_us), "data": data, **extra})


def _event(e: Event) -> bytes:
    # Operator journal entries (subscribe to `event.*`, or `event.warning.*`...) go out as
    # type `event`, as seed 002's HMI channel has them; everything else as `bus`.
    kind = "event" if e.topic.startswith("event.") else "bus"
    return _envelope(kind, e.seq, e.ts_us, e.data, topic=e.topic, source=e.source)


class _Session:
    def __init__(self) -> None:
        f = facade()
        self.runtime = f.runtime
        self.sub: TrioSubscription | None = None
        self.forwarder: trio.CancelScope | None = None

    async def error(self, detail: str) -> None:
        await websocket.send(_envelope(
            "error", None, self.runtime.clock.now_us(), {"title": "Bad Message", "detail": detail}
        ))

    def parse(self, raw: str | bytes) -> ClientMessage:
        if isinstance(raw, str):
            raw = raw.encode()
        try:
            msg = _DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            raise ValueError(f"not a valid message: {exc}") from None
        if (msg.token is None) == (msg.subscribe is None):
            raise ValueError("send exactly one of 'token' or 'subscribe'")
        return msg

    async def subscribe(self, nursery: trio.Nursery, patterns: list[str]) -> None:
        if not patterns or len(patterns) > MAX_PATTERNS or any(len(p) > 128 for p in patterns):
            raise ValueError(f"subscribe to 1..{MAX_PATTERNS} patterns of at most 128 chars")
        for pattern in patterns:
            check_pattern(pattern)
        bus = self.runtime.bus
        sub = bus.subscribe_trio(patterns, maxsize=QUEUE, name="ws")  # ValueError if invalid
        if self.forwarder is not None:
            self.forwarder.cancel()
        if self.sub is not None:
            bus.unsubscribe(self.sub)
        self.sub = sub
        last, events = bus.snapshot(patterns)
        await websocket.send(_envelope(
            "snapshot", last, self.runtime.clock.now_us(),
            {"patterns": patterns, "topics": {e.topic: {
                "seq": e.seq, "ts": rfc3339(e.ts_us), "source": e.source, "data": e.data,
            } for e in events}},
        ))
        self.forwarder = trio.CancelScope()
        nursery.start_soon(self.forward, sub, last, self.forwarder)

    async def forward(self, sub: TrioSubscription, after_seq: int, scope: trio.CancelScope
                      ) -> None:
        with scope:
            reported = 0
            async for event in sub:
                if event.seq <= after_seq:
                    continue  # already in the snapshot
                if sub.dropped != reported:
                    await websocket.send(_envelope("gap", event.seq, event.ts_us,
                                                   {"dropped": sub.dropped - reported}))
                    reported = sub.dropped
                await websocket.send(_event(event))

    def close(self) -> None:
        if self.sub is not None:
            self.runtime.bus.unsubscribe(self.sub)


async def _authenticate(session: _Session) -> Principal | None:
    token = websocket_token()
    if token is None:
        with trio.move_on_after(AUTH_TIMEOUT_S):
            while token is None:
                try:
                    msg = session.parse(await websocket.receive())
                except ValueError as exc:
                    await session.error(str(exc))
                    continue
                if msg.token is None:
                    await session.error("authenticate first: send {\"token\": \"...\"}")
                    continue
                token = msg.token
    try:
        return await authenticate(token)
    except Problem as exc:
        await session.error(exc.detail)
        return None


@blueprint.websocket("/ws")
async def ws() -> None:
    await websocket.accept()
    session = _Session()
    principal = await _authenticate(session)
    if principal is None:
        await websocket.close(1008, "authentication failed")
        return
    await websocket.send(_envelope("ready", session.runtime.bus.last_seq,
                                   session.runtime.clock.now_us(), {"principal": principal.name}))
    try:
        async with trio.open_nursery() as nursery:
            while True:
                raw = await websocket.receive()
                try:
                    msg = session.parse(raw)
                    if msg.subscribe is None:
                        raise ValueError("already authenticated; send {\"subscribe\": [...]}")
                    await session.subscribe(nursery, msg.subscribe)
                except ValueError as exc:
                    await session.error(str(exc))  # a bad message changes nothing
    finally:
        session.close()
