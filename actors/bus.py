"""Topic pub/sub: publish from any thread; actors get a tell, trio tasks a bounded channel.

Every event gets a global `seq` and `ts_us` under one lock, and is handed to every
matching subscriber under that same lock, so each subscriber sees events in `seq`
order. Delivery never blocks: a subscriber that falls behind loses events and its
`dropped` counter grows.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

import msgspec
import pykka
import trio

from actors.quiescence import InFlight
from controller.clock import Clock

__all__ = ["Bus", "BusStatistics", "Event", "SubscriberStatistics", "TrioSubscription"]

log = logging.getLogger("takt.bus")


class Event(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    ts_us: int
    topic: str
    source: str
    data: Any
    durable: bool = False


class SubscriberStatistics(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    patterns: list[str]
    kind: str
    delivered: int
    dropped: int


class BusStatistics(msgspec.Struct, frozen=True, kw_only=True):
    published: int
    last_seq: int
    subscribers: list[SubscriberStatistics]
    dropped_closed: int  # drops of subscribers that are gone, so totals never go down
    unjournaled: int  # durable events published while no journal writer was subscribed


def _compile(patterns: Iterable[str]) -> tuple[list[str], Any]:
    pats = list(patterns)
    if not pats:
        raise ValueError("a subscription needs at least one topic pattern")
    for p in pats:
        if not p or any(c in p for c in " []?\n") or p.startswith(".") or p.endswith("."):
            raise ValueError(f"invalid topic pattern {p!r}: use dotted names and '*'")
    regex = "|".join(fnmatch.translate(p) for p in pats)
    return pats, re.compile(regex).match


class _Subscription:
    kind = "base"

    def __init__(self, name: str, patterns: Iterable[str], durable_only: bool = False) -> None:
        self.name = name
        self.durable_only = durable_only
        self.patterns, self.matches = _compile(patterns)
        self.delivered = 0
        self.dropped = 0
        self.closed = False

    def offer(self, event: Event) -> None:  # called under the bus lock
        raise NotImplementedError

    def statistics(self) -> SubscriberStatistics:
        return SubscriberStatistics(
            name=self.name,
            patterns=self.patterns,
            kind=self.kind,
            delivered=self.delivered,
            dropped=self.dropped,
        )


class _ActorSubscription(_Subscription):
    """Tells the event to an actor; drops the newest when its mailbox is over `maxsize`.

    An actor's mailbox also carries its commands, so events are never pulled back
    out of it: the newest event is the one dropped, and counted.
    """

    kind = "actor"

    def __init__(
        self, name: str, patterns: Iterable[str], ref: pykka.ActorRef[Any], maxsize: int,
        inflight: InFlight, durable_only: bool,
    ) -> None:
        super().__init__(name, patterns, durable_only)
        self.ref = ref
        self.maxsize = maxsize
        self.inflight = inflight

    def offer(self, event: Event) -> None:
        if self.ref.actor_inbox.qsize() >= self.maxsize:
            self.dropped += 1
            return
        self.inflight.add()
        try:
            self.ref.tell(event)
        except pykka.ActorDeadError:
            self.inflight.done()
            self.dropped += 1  # its subscriber died: this event is lost to it, and counted
            self.closed = True
            return
        self.delivered += 1


class TrioSubscription(_Subscription):
    """A bounded channel into one trio run; on overflow the oldest event is dropped."""

    kind = "trio"

    def __init__(self, name: str, patterns: Iterable[str], maxsize: int,
                 token: trio.lowlevel.TrioToken) -> None:
        super().__init__(name, patterns)
        self._send, self._receive = trio.open_memory_channel[Event](maxsize)
        self._token = token

    def offer(self, event: Event) -> None:
        try:
            self._token.run_sync_soon(self._deliver, event)
        except trio.RunFinishedError:
            self.closed = True

    def _deliver(self, event: Event) -> None:  # runs in the trio thread
        if self.closed:
            return
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self._receive.receive_nowait()  # lose the oldest, keep the newest
            self.dropped += 1
            self._send.send_nowait(event)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self.closed = True
            return
        self.delivered += 1

    async def receive(self) -> Event:
        return await self._receive.receive()

    def receive_nowait(self) -> Event:
        return self._receive.receive_nowait()

    def __aiter__(self) -> TrioSubscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._receive.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class Bus:
    def __init__(self, clock: Clock, inflight: InFlight, *, seq_start: int = 0) -> None:
        self._clock = clock
        self._inflight = inflight
        self._lock = threading.Lock()
        self._seq = seq_start
        self._published = 0
        self._subs: list[_Subscription] = []
        self._route_cache: dict[str, tuple[_Subscription, ...]] = {}
        self._retained: dict[str, Event] = {}
        self._names = itertools.count(1)
        self._dropped_closed = 0
        self._unjournaled = 0

    @property
    def last_seq(self) -> int:
        return self._seq

    def publish(self, topic: str, data: Any, *, source: str = "", durable: bool = False) -> Event:
        """Stamp the event with the next seq and the clock's time, then deliver it."""
        with self._lock:
            self._seq += 1
            self._published += 1
            event = Event(
                seq=self._seq, ts_us=self._clock.now_us(), topic=topic, source=source,
                data=data, durable=durable,
            )
            self._retained[topic] = event
            subs = self._route_cache.get(topic)
            if subs is None:
                subs = tuple(s for s in self._subs if s.matches(topic))
                self._route_cache[topic] = subs
            dead = journaled = False
            for sub in subs:
                if sub.durable_only:
                    if not durable:
                        continue
                    journaled = True
                sub.offer(event)
                dead = dead or sub.closed
            if dead:
                self._drop_closed()
            if durable and not journaled:
                # The store is down or restarting: the journal will have a hole at this
                # seq. Counted, never silent.
                self._unjournaled += 1
        return event

    def subscribe_actor(
        self, patterns: Iterable[str], ref: pykka.ActorRef[Any], *, name: str | None = None,
        maxsize: int = 100_000, durable_only: bool = False,
    ) -> _Subscription:
        """Tell matching events to an actor; `durable_only` for the journal writer."""
        sub = _ActorSubscription(
            name or f"actor-{next(self._names)}", patterns, ref, maxsize, self._inflight,
            durable_only,
        )
        self._add(sub)
        return sub

    def subscribe_trio(
        self, patterns: Iterable[str], *, name: str | None = None, maxsize: int = 1000,
        token: trio.lowlevel.TrioToken | None = None,
    ) -> TrioSubscription:
        """Subscribe the calling trio run (or the one `token` names)."""
        token = token or trio.lowlevel.current_trio_token()
        sub = TrioSubscription(name or f"trio-{next(self._names)}", patterns, maxsize, token)
        self._add(sub)
        return sub

    def unsubscribe(self, sub: _Subscription) -> None:
        with self._lock:
            sub.closed = True
            self._drop_closed()

    def retained(self, patterns: Iterable[str]) -> list[Event]:
        """The last event of every topic matching `patterns`, in seq order (for snapshots)."""
        return self.snapshot(patterns)[1]

    def snapshot(self, patterns: Iterable[str]) -> tuple[int, list[Event]]:
        """`retained` plus the seq it is current as of: events after it are news."""
        _, matches = _compile(patterns)
        with self._lock:
            last = self._seq
            found = [e for t, e in self._retained.items() if matches(t)]
        return last, sorted(found, key=lambda e: e.seq)

    def statistics(self) -> BusStatistics:
        with self._lock:
            return BusStatistics(
                published=self._published,
                last_seq=self._seq,
                subscribers=[s.statistics() for s in self._subs],
                dropped_closed=self._dropped_closed,
                unjournaled=self._unjournaled,
            )

    def _add(self, sub: _Subscription) -> None:
        with self._lock:
            self._subs.append(sub)
            self._route_cache.clear()

    def _drop_closed(self) -> None:  # caller holds the lock
        self._dropped_closed += sum(s.dropped for s in self._subs if s.closed)
        self._subs = [s for s in self._subs if not s.closed]
        self._route_cache.clear()
