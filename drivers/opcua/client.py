"""Blocking OPC-UA client for line PLCs: subscriptions or polled reads, writes and browse.

asyncua runs on the client's own LoopThread; each blocking method hands it a coroutine and
waits at most timeout_s. asyncua and socket errors become Takt driver errors here. A client
connects once: after a lost link the caller's supervisor builds a new one.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import CancelledError
from typing import Any, TypeVar
from urllib.parse import urlparse

from asyncua import Client, ua

from drivers.errors import DeviceUnavailable, DriverError, FrameError
from drivers.loop_thread import LoopThread
from drivers.opcua.bindings import (
    DEADBANDS,
    MonitoringRefused,
    OpcuaTag,
    TagProblems,
    TypeMismatch,
    UnknownNodes,
    check_tag,
)
from drivers.opcua.browse import AddressSpace, BrowsedTag, is_bad, value_of
from drivers.opcua.values import (
    Value,
    compatible,
    from_opcua,
    takt_type_for,
    to_variant,
)

__all__ = [
    "BrowsedTag",
    "MonitoringRefused",
    "OpcuaClient",
    "OpcuaTag",
    "TagProblems",
    "TypeMismatch",
    "UnknownNodes",
    "WriteRefused",
    "quiet_asyncua_logging",
]

_logger = logging.getLogger(__name__)
_T = TypeVar("_T")

# The server closes a session its client has not used for this long; the watchdog reads
# every second, so a short timeout only frees the sessions of clients that vanished
# (PLCs allow a handful of sessions, and a reconnecting client must not exhaust them).
_SESSION_TIMEOUT_MS = 30_000
_KEEPALIVE_MS = 2_000
_LIFETIME_COUNT = 10_000
_STATUS_LINK = frozenset({
    ua.StatusCodes.BadConnectionClosed, ua.StatusCodes.BadSecureChannelClosed,
    ua.StatusCodes.BadSecureChannelIdInvalid, ua.StatusCodes.BadSessionClosed,
    ua.StatusCodes.BadSessionIdInvalid, ua.StatusCodes.BadSessionNotActivated,
    ua.StatusCodes.BadServerNotConnected, ua.StatusCodes.BadCommunicationError,
    ua.StatusCodes.BadTimeout, ua.StatusCodes.BadShutdown, ua.StatusCodes.BadServerHalted,
    ua.StatusCodes.BadTooManySessions, ua.StatusCodes.BadNoCommunication,
})
_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)


class WriteRefused(DriverError):
    """The server answered a write with a Bad status (not writable, wrong type...)."""


def quiet_asyncua_logging() -> None:
    """Silence asyncua unless the application configured its logger itself."""
    # asyncua logs every lost connection and publish retry with tracebacks; Takt's
    # supervisor logs "unavailable" and "back" once each instead.
    logger = logging.getLogger("asyncua")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL + 1)


class OpcuaClient:
    """One session to one OPC-UA server with a fixed set of tags; connect() once, close() once.

    Callbacks run on the client's loop thread: on_change for every subscribed value (the
    server's initial ones too), on_lost once when the link dies, on_malformed with a message
    naming the tag when a value (subscribed or read) cannot be decoded or has a Bad status.
    None of them runs after close() returns.
    """

    def __init__(
        self,
        endpoint: str,
        tags: Sequence[OpcuaTag],
        *,
        on_change: Callable[[str, Value], None],
        on_lost: Callable[[str], None],
        on_malformed: Callable[[str], None] | None = None,
        timeout_s: float = 2.0,
        name: str = "opcua",
        watchdog_s: float = 1.0,
    ) -> None:
        url = urlparse(endpoint)
        if url.scheme != "opc.tcp" or not url.hostname:
            raise ValueError(f"{endpoint!r} is not an opc.tcp://host:port endpoint")
        if not timeout_s > 0 or not watchdog_s > 0:
            raise ValueError("timeout_s and watchdog_s must be > 0")
        self._endpoint = endpoint
        self._tags: dict[str, OpcuaTag] = {}
        self._node_ids: dict[str, ua.NodeId] = {}
        for tag in tags:
            if tag.name in self._tags:
                raise ValueError(f"tag {tag.name!r} is bound twice")
            self._node_ids[tag.name] = check_tag(tag)
            self._tags[tag.name] = tag
        self._on_change = on_change
        self._on_lost = on_lost
        self._on_malformed = on_malformed
        self._timeout_s = timeout_s
        self._watchdog_s = watchdog_s
        self._name = name
        self._loop = LoopThread(f"{name}-opcua")
        self._client: Client | None = None
        self._by_handle: dict[int, OpcuaTag] = {}
        self._space = AddressSpace(lambda: self._ua)
        self._started = False
        self._armed = False  # on_lost fires only once connect() has succeeded
        self._closing = False
        self._lost: str | None = None
        self._teardown_task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        """True from a successful connect() until the link is lost or close() is called."""
        return self._armed and self._lost is None and not self._closing

    def connect(self) -> None:
        """Open the session, check every binding and subscribe; raises DeviceUnavailable,
        UnknownNodes, TypeMismatch or MonitoringRefused (and leaves nothing running)."""
        if self._started:
            raise RuntimeError(f"{self._name}: connect() once per client; build a new one")
        self._started = True
        quiet_asyncua_logging()
        self._loop.start()
        try:
            self._run(self._open(), self._timeout_s)
            self._run(self._resolve(), self._timeout_s)
            self._run(self._subscribe(), self._timeout_s)
            self._run(self._arm(), self._timeout_s)
        except BaseException:
            self.close()
            raise

    def poll(self) -> list[tuple[str, Value]]:
        """Read every tag that is not subscribed, in one Read call."""
        self._check_usable()
        names = [tag.name for tag in self._tags.values() if not tag.subscribe]
        return self.read(names) if names else []

    def read(self, names: Sequence[str]) -> list[tuple[str, Value]]:
        """Read some tags (any mode) in one Read call; undecodable ones go to on_malformed."""
        tags = [self._tag(name) for name in names]
        self._check_usable()
        return self._run(self._read(tags), self._timeout_s)

    def write(self, name: str, value: Value) -> None:
        """Write one tag; ValueError if value does not fit its type, WriteRefused on Bad*."""
        tag = self._tag(name)
        variant = to_variant(tag.type, value)
        self._check_usable()
        self._run(self._write(tag, variant), self._timeout_s)

    def browse(self, max_depth: int = 6, limit: int = 1000) -> list[BrowsedTag]:
        """Variables under the Objects folder (not the Server object), breadth first."""
        if max_depth < 1 or limit < 1:
            raise ValueError("max_depth and limit must be >= 1")
        self._check_usable()
        return self._run(self._space.browse(max_depth, limit),
                         self._timeout_s * (max_depth + 2))

    def close(self) -> None:
        """Close the session and stop the loop; safe twice, also from a callback."""
        self._closing = True
        if not self._loop.running:
            return
        try:
            on_loop = asyncio.get_running_loop() is self._loop.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            # Called from a callback: the loop cannot wait for itself, so just drop the link.
            client, self._client = self._client, None
            if client is not None:
                _abort(client)
            self._loop.stop()
            return
        try:
            self._loop.run(self._teardown(self._lost is None), self._timeout_s)
        except Exception as exc:
            _logger.debug("%s: close: %r", self._name, exc)
        finally:
            self._loop.stop()

    # -- blocking side helpers -------------------------------------------------------------

    def _tag(self, name: str) -> OpcuaTag:
        try:
            return self._tags[name]
        except KeyError:
            raise KeyError(f"{self._name}: no tag {name!r}") from None

    def _check_usable(self) -> None:
        if self._closing or not self._armed:
            raise DeviceUnavailable(f"{self._name}: not connected")
        if self._lost is not None:
            raise DeviceUnavailable(f"{self._name}: link lost: {self._lost}")

    def _run(self, coro: Coroutine[Any, Any, _T], timeout_s: float) -> _T:
        try:
            return self._loop.run(coro, timeout_s)
        except DriverError:
            raise
        except CancelledError:  # close() stopped the loop under this call
            raise DeviceUnavailable(f"{self._name}: closed") from None
        except TimeoutError:
            raise DeviceUnavailable(
                f"{self._name}: no answer from {self._endpoint} within {timeout_s:g} s"
            ) from None
        except (OSError, ua.UaError) as exc:
            if isinstance(exc, ua.UaStatusCodeError) and exc.code not in _STATUS_LINK:
                raise DriverError(f"{self._name}: {self._endpoint} refused: {exc}") from exc
            raise DeviceUnavailable(f"{self._name}: {self._endpoint}: {_describe(exc)}") from exc

    # -- loop side ---------------------------------------------------------------------------

    @property
    def _ua(self) -> Client:
        if self._client is None:
            raise DeviceUnavailable(f"{self._name}: not connected")
        return self._client

    async def _open(self) -> None:
        client = Client(
            self._endpoint, timeout=self._timeout_s, watchdog_intervall=self._watchdog_s
        )
        client.session_timeout = _SESSION_TIMEOUT_MS
        client.name = client.description = f"Takt {self._name}"
        client.connection_lost_callback = self._on_connection_lost
        self._client = client
        await client.connect()

    async def _resolve(self) -> None:
        unknown = await self._resolve_namespaces()
        tags = [tag for tag in self._tags.values() if tag.name not in unknown]
        attributes = (ua.AttributeIds.NodeClass, ua.AttributeIds.DataType,
                      ua.AttributeIds.ValueRank)
        results = await self._space.read_attributes(
            [(self._node_ids[tag.name], attr) for tag in tags for attr in attributes]
        )
        mismatch: dict[str, str] = {}
        for index, tag in enumerate(tags):
            node_class, data_type, rank = results[3 * index : 3 * index + 3]
            if is_bad(node_class):
                unknown[tag.name] = _node_problem(tag.node, node_class.StatusCode)
                continue
            if value_of(node_class) != ua.NodeClass.Variable:
                kind = ua.NodeClass(value_of(node_class)).name
                unknown[tag.name] = f"node {tag.node} is not a Variable (it is {kind})"
                continue
            problem = await self._type_problem(tag, data_type, rank)
            if problem:
                mismatch[tag.name] = problem
        if unknown:
            raise UnknownNodes(unknown, mismatch)
        if mismatch:
            raise TypeMismatch(mismatch)
        await self._check_percent_deadbands()

    async def _resolve_namespaces(self) -> dict[str, str]:
        """Give "nsu=<uri>;..." nodes the index the server has for the URI; returns misses."""
        expanded = {n: nid for n, nid in self._node_ids.items()
                    if isinstance(nid, ua.ExpandedNodeId) and nid.NamespaceUri}
        missing: dict[str, str] = {}
        if not expanded:
            return missing
        array = list(await self._ua.get_namespace_array())
        for name, nid in expanded.items():
            assert isinstance(nid, ua.ExpandedNodeId)
            if nid.NamespaceUri not in array:
                missing[name] = f"namespace {nid.NamespaceUri} is not on the server"
                continue
            index = array.index(nid.NamespaceUri)
            self._node_ids[name] = ua.NodeId(nid.Identifier, index, nid.NodeIdType)
        return missing

    async def _type_problem(
        self, tag: OpcuaTag, data_type: ua.DataValue, rank: ua.DataValue
    ) -> str | None:
        if is_bad(data_type) or not isinstance(value_of(data_type), ua.NodeId):
            return f"node {tag.node} has no readable DataType"
        if not is_bad(rank) and isinstance(value_of(rank), int) and value_of(rank) >= 0:
            return f"node {tag.node} holds arrays; Takt binds scalars"
        variant_type = await self._space.variant_type(value_of(data_type))
        if variant_type is None or not compatible(tag.type, variant_type):
            held = variant_type.name if variant_type is not None else "a structured type"
            hint = takt_type_for(variant_type) if variant_type is not None else None
            fix = f"; declare type = {hint!r}" if hint else ""
            return f"node {tag.node} holds {held}, not {tag.type}{fix}"
        return None

    async def _check_percent_deadbands(self) -> None:
        # A percent deadband is relative to the node's EURange; without one a server refuses
        # the filter (or, like asyncua's, ignores it), so say so plainly before subscribing.
        tags = [t for t in self._tags.values() if t.subscribe and t.deadband_type == "percent"]
        if not tags:
            return
        paths = [
            ua.BrowsePath(
                StartingNode=self._node_ids[tag.name],
                RelativePath=ua.RelativePath(Elements=[ua.RelativePathElement(
                    ReferenceTypeId=_HAS_PROPERTY, IsInverse=False, IncludeSubtypes=False,
                    TargetName=ua.QualifiedName("EURange", 0),
                )]),
            )
            for tag in tags
        ]
        results = await self._ua.uaclient.translate_browsepaths_to_nodeids(paths)
        refused = {
            tag.name: f"node {tag.node} has no EURange property, so a percent deadband "
            "cannot apply; use an absolute deadband"
            for tag, result in zip(tags, results, strict=True)
            if result.StatusCode.is_bad() or not result.Targets
        }
        if refused:
            raise MonitoringRefused(refused)

    async def _subscribe(self) -> None:
        groups: dict[float, list[OpcuaTag]] = {}
        for tag in self._tags.values():
            if tag.subscribe:
                groups.setdefault(tag.publishing_interval_ms, []).append(tag)
        refused: dict[str, str] = {}
        for interval, tags in groups.items():
            keepalive = max(1, math.ceil(_KEEPALIVE_MS / max(interval, 50.0)))
            params = ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=interval,
                RequestedLifetimeCount=max(_LIFETIME_COUNT, 3 * keepalive),
                RequestedMaxKeepAliveCount=keepalive,
                MaxNotificationsPerPublish=0,
                PublishingEnabled=True,
                Priority=0,
            )
            # The raw service with a plain callback: asyncua's Subscription class would hand
            # each change to a new task, one more loop hop before on_change.
            created = await self._ua.uaclient.create_subscription(params, self._on_publish)
            items = []
            for tag in tags:
                handle = len(self._by_handle) + 1
                self._by_handle[handle] = tag
                items.append(self._monitored_item(tag, handle))
            request = ua.CreateMonitoredItemsParameters(
                SubscriptionId=created.SubscriptionId,
                TimestampsToReturn=ua.TimestampsToReturn.Neither,
                ItemsToCreate=items,
            )
            results = await self._ua.uaclient.create_monitored_items(request)
            for tag, result in zip(tags, results, strict=True):
                if result.StatusCode.is_bad():
                    refused[tag.name] = f"node {tag.node}: {_status_text(result.StatusCode)}"
        if refused:
            raise MonitoringRefused(refused)

    def _monitored_item(self, tag: OpcuaTag, handle: int) -> ua.MonitoredItemCreateRequest:
        data_filter = None
        if tag.deadband_type != "none":
            data_filter = ua.DataChangeFilter(
                Trigger=ua.DataChangeTrigger.StatusValue,
                DeadbandType=DEADBANDS[tag.deadband_type],
                DeadbandValue=tag.deadband,
            )
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=self._node_ids[tag.name],
                                         AttributeId=ua.AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting,
            RequestedParameters=ua.MonitoringParameters(
                ClientHandle=handle,
                SamplingInterval=tag.sampling_interval_ms,
                Filter=data_filter,
                QueueSize=tag.queue_size,
                DiscardOldest=True,
            ),
        )

    async def _arm(self) -> None:
        # On the loop, so a loss noticed during connect() cannot slip between check and arm.
        if self._lost is not None:
            raise DeviceUnavailable(f"{self._name}: link lost while connecting: {self._lost}")
        self._armed = True

    async def _read(self, tags: list[OpcuaTag]) -> list[tuple[str, Value]]:
        results = await self._space.read_attributes(
            (self._node_ids[tag.name], ua.AttributeIds.Value) for tag in tags
        )
        values: list[tuple[str, Value]] = []
        for tag, data in zip(tags, results, strict=True):
            value = self._decode(tag, data)
            if value is not None:
                values.append((tag.name, value))
        return values

    async def _write(self, tag: OpcuaTag, variant: ua.Variant) -> None:
        params = ua.WriteParameters(NodesToWrite=[ua.WriteValue(
            NodeId=self._node_ids[tag.name],
            AttributeId=ua.AttributeIds.Value,
            Value=ua.DataValue(Value=variant),
        )])
        (status,) = await self._ua.uaclient.write(params)
        if status.is_bad():
            raise WriteRefused(
                f"{self._name}: {tag.name} ({tag.node}) refused {variant.Value!r}: "
                f"{_status_text(status)}"
            )

    def _decode(self, tag: OpcuaTag, data: ua.DataValue | None) -> Value | None:
        try:
            if data is None:
                raise FrameError("no value")
            if data.StatusCode is not None and data.StatusCode.is_bad():
                raise FrameError(_status_text(data.StatusCode))
            return from_opcua(tag.type, data.Value)
        except FrameError as exc:
            self._malformed(f"{tag.name} ({tag.node}): {exc}")
            return None

    def _on_publish(self, result: ua.PublishResult) -> None:
        # Called by asyncua's publish loop for every Publish response of our subscriptions.
        if self._closing:
            return
        for notification in result.NotificationMessage.NotificationData or ():
            if isinstance(notification, ua.DataChangeNotification):
                for item in notification.MonitoredItems:
                    tag = self._by_handle.get(item.ClientHandle)
                    if tag is not None:
                        self._deliver(tag, item.Value)
            elif (
                isinstance(notification, ua.StatusChangeNotification)
                and notification.Status.is_bad()
            ):
                self._link_lost(f"subscription ended: {_status_text(notification.Status)}")

    def _deliver(self, tag: OpcuaTag, data: ua.DataValue) -> None:
        value = self._decode(tag, data)
        if value is None or self._closing:
            return
        try:
            self._on_change(tag.name, value)
        except Exception:
            _logger.exception("%s: on_change(%s) raised", self._name, tag.name)

    def _malformed(self, message: str) -> None:
        if self._on_malformed is None or self._closing:
            return
        try:
            self._on_malformed(message)
        except Exception:
            _logger.exception("%s: on_malformed raised", self._name)

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._link_lost(_describe(exc))

    def _link_lost(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        # Stop asyncua's publish loop retrying on a dead socket; close() finishes the job.
        self._teardown_task = asyncio.get_running_loop().create_task(self._teardown(False))
        if self._armed and not self._closing:
            try:
                self._on_lost(reason)
            except Exception:
                _logger.exception("%s: on_lost raised", self._name)

    async def _teardown(self, graceful: bool) -> None:
        client, self._client = self._client, None
        if client is None:
            pending = self._teardown_task
            if pending is not None and pending is not asyncio.current_task():
                await asyncio.gather(pending, return_exceptions=True)
            return
        if not graceful and _abort(client):
            # With the socket gone, disconnect() skips CloseSession, which a dead or silent
            # server would never answer.
            for _ in range(3):  # connection_lost runs on a later loop turn
                await asyncio.sleep(0)
        try:
            await client.disconnect()
        except Exception as exc:
            _logger.debug("%s: disconnect: %r", self._name, exc)
        client.disconnect_socket()


def _abort(client: Client) -> bool:
    """Drop the socket at once (nothing flushed); True if there was one."""
    protocol = client.uaclient.protocol
    if protocol is None or protocol.transport is None:
        return False
    protocol.transport.abort()
    return True


def _status_text(status: ua.StatusCode) -> str:
    name = status.name
    return f"{name} ({status.doc})" if status.doc else name


def _node_problem(node: str, status: ua.StatusCode | None) -> str:
    if status is not None and status.value in (
        ua.StatusCodes.BadNodeIdUnknown, ua.StatusCodes.BadNodeIdInvalid
    ):
        return f"node {node} does not exist"
    return f"node {node}: {_status_text(status) if status else 'unreadable'}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ua.UaStatusCodeError):
        return _status_text(ua.StatusCode(exc.code))
    if isinstance(exc, TimeoutError):
        return "server stopped answering"
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, OSError) else f"{type(exc).__name__}: {text}"
