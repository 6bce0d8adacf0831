"""The base of every Takt actor: named, health-reporting, supervised, counted.

Subclasses declare handlers with `@handles(MessageType)`. A message that arrives as a
`Request` is answered through its reply callback; an exception there goes back to
the caller, unless it is one of the actor's `fatal` errors (a lost device link),
which also fails the actor so its supervisor restarts it. An exception in a plain
`tell` handler fails the actor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any, ClassVar, TypeVar

import msgspec
import pykka

from actors.health import HealthState
from actors.runtime import ActorUnavailable, Request, Runtime, tell

__all__ = ["ActorStatistics", "ChildExited", "TaktActor", "handles"]

M = TypeVar("M")
F = TypeVar("F", bound=Callable[..., Any])


class ActorStatistics(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    mailbox: int
    handled: int
    errors: int


class ChildExited(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Told to the supervisor when a child stops, normally or not."""

    child_id: str
    generation: int
    error: str | None  # None: a normal stop


def handles(*types: type, deferred: bool = False) -> Callable[[F], F]:
    """Mark a method as the handler of the given message types.

    A `deferred` handler is called as `handler(message, reply)` and answers later by
    calling `reply(result, error)` itself (group commit acks after the commit).
    """

    def mark(fn: F) -> F:
        fn.__takt_handles__ = types  # type: ignore[attr-defined]
        fn.__takt_deferred__ = deferred  # type: ignore[attr-defined]
        return fn

    return mark


def _no_reply(result: Any, error: BaseException | None) -> None:
    if error is not None:
        raise error


class TaktActor(pykka.ThreadingActor):
    #: Errors that, raised while answering a request, also fail the actor.
    fatal: ClassVar[tuple[type[BaseException], ...]] = ()
    #: A critical component being down makes the whole station unhealthy.
    critical: ClassVar[bool] = False
    _handlers: ClassVar[dict[type, Callable[..., Any]]] = {}
    _plain: ClassVar[dict[type, Callable[[Any, Any], Any]]] = {}  # not deferred

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        table: dict[type, Callable[[Any, Any], Any]] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                for t in getattr(attr, "__takt_handles__", ()):
                    table[t] = attr
        cls._handlers = table
        cls._plain = {t: fn for t, fn in table.items() if not fn.__takt_deferred__}

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        *,
        parent: pykka.ActorRef[Any] | None = None,
        generation: int = 0,
    ) -> None:
        super().__init__()
        self.runtime = runtime
        self.clock = runtime.clock
        self.bus = runtime.bus
        self.name = name
        self.parent = parent
        self.generation = generation
        self.handled = 0
        self.errors = 0
        self._failure_reported = False
        self.log = logging.LoggerAdapter(
            logging.getLogger(f"takt.actor.{type(self).__name__.lower()}"), {"actor": name}
        )
        self.actor_ref.takt_name = name  # type: ignore[attr-defined]
        runtime.health.register(name, critical=self.critical)
        runtime.health.attach(name, self._stats_tuple)
        runtime.inflight.add()  # the start itself; uncounted at the end of on_start

    # --- hooks for subclasses -------------------------------------------------------

    def started(self) -> None:
        """Runs in the actor's thread before any message; raise to fail the start."""
        self.set_health(HealthState.UP)

    def stopping(self) -> None:
        """Runs in the actor's thread on a normal stop; release resources here."""

    def failed(self, error: BaseException) -> None:
        """Runs in the actor's thread when it fails; release resources here."""

    # --- public helpers --------------------------------------------------------------

    def set_health(self, state: HealthState, error: str | None = None) -> None:
        self.runtime.health.set_state(self.name, state, error)

    def publish(self, topic: str, data: Any, *, durable: bool = False) -> None:
        self.bus.publish(topic, data, source=self.name, durable=durable)

    def tell_self_later(self, delay_s: float, message: Any) -> Any:
        """Schedule a message to self on the clock (counted in flight when it fires)."""
        ref = self.actor_ref
        runtime = self.runtime

        def fire() -> None:
            try:
                tell(runtime, ref, message)
            except ActorUnavailable:
                pass  # the actor stopped meanwhile; the timer has nobody to wake

        return self.clock.call_later(delay_s, fire)

    def statistics(self) -> ActorStatistics:
        mailbox, handled, errors = self._stats_tuple()
        return ActorStatistics(name=self.name, mailbox=mailbox, handled=handled, errors=errors)

    # --- pykka plumbing --------------------------------------------------------------

    def _stats_tuple(self) -> tuple[int, int, int]:
        return self.actor_inbox.qsize(), self.handled, self.errors

    def on_start(self) -> None:
        # The start counts as work in flight (added in __init__), so nobody sees the
        # system idle between a failed start and the supervisor hearing of it.
        self._counters = self.runtime.inflight.counters()  # this actor thread's own
        try:
            self.started()
        except BaseException as exc:
            # pykka stops the actor but does not call on_failure for a failed start.
            self._report_failure(exc)
            raise
        finally:
            self._counters.done += 1

    def on_receive(self, message: Any) -> Any:
        # The hot path of every actor hop: one dict lookup for a plain tell.
        try:
            handler = self._plain.get(type(message))
            if handler is not None:
                handler(self, message)
            elif type(message) is Request:
                self._answer(message)
            else:
                self._dispatch(message)
        except UnknownMessage as exc:
            self.log.warning("%s", exc)  # a stray message is counted, not a reason to die
        except Exception as exc:
            # Report before uncounting the message, for the same reason as in on_start.
            self._report_failure(exc)
            raise
        finally:
            self.handled += 1
            self._counters.done += 1

    def _dispatch(self, message: Any) -> Any:
        handler = self._handlers.get(type(message))
        if handler is None:
            self.errors += 1
            raise UnknownMessage(f"{self.name} has no handler for {type(message).__name__}")
        if handler.__takt_deferred__:  # type: ignore[attr-defined]
            return handler(self, message, _no_reply)
        return handler(self, message)

    def _answer(self, request: Request) -> None:
        handler = self._handlers.get(type(request.payload))
        if handler is not None and handler.__takt_deferred__:  # type: ignore[attr-defined]
            try:
                handler(self, request.payload, request.reply)
            except Exception as exc:
                self.errors += 1
                request.reply(None, exc)
                if isinstance(exc, self.fatal):
                    raise
            return
        try:
            result = self._dispatch(request.payload)
        except UnknownMessage as exc:
            request.reply(None, exc)
        except Exception as exc:
            self.errors += 1
            request.reply(None, exc)
            if isinstance(exc, self.fatal):
                raise
        else:
            request.reply(result, None)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._failure_reported:
            self._report_failure(exception_value or RuntimeError("unknown failure"))

    def on_stop(self) -> None:
        try:
            self.stopping()
        finally:
            self._notify_parent(None)

    def _report_failure(self, error: BaseException) -> None:
        self._failure_reported = True
        text = f"{type(error).__name__}: {error}"
        if not isinstance(error, self.fatal):  # expected faults (a lost link) log once via health
            self.log.error("failed: %s", text, exc_info=error)
        self.set_health(HealthState.DOWN, text)
        try:
            self.failed(error)
        except Exception:
            self.log.exception("cleanup after failure raised")
        self._notify_parent(text)

    def _notify_parent(self, error: str | None) -> None:
        if self.parent is None:
            return
        try:
            tell(self.runtime, self.parent, ChildExited(
                child_id=self.name, generation=self.generation, error=error
            ))
        except ActorUnavailable:
            pass  # the supervisor is going down too

    def _actor_loop_teardown(self) -> None:
        # Nobody is left hanging: requests still queued when the actor dies fail at once.
        # (pykka fails its own ask futures here but knows nothing of reply callbacks.)
        while not self.actor_inbox.empty():
            envelope = self.actor_inbox.get()
            message = envelope.message
            if type(message) is Request:
                message.reply(None, ActorUnavailable(f"{self.name} stopped before answering"))
            if envelope.reply_to is None and not isinstance(message, pykka.messages._ActorStop):
                self.runtime.inflight.done()
            elif envelope.reply_to is not None:
                envelope.reply_to.set_exception(
                    exc_info=(pykka.ActorDeadError, pykka.ActorDeadError(
                        f"{self.name} stopped before handling the message"), None)
                )


class UnknownMessage(TypeError):
    """The actor has no handler for that message type."""
