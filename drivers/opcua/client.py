"""Blocking OPC-UA client for line PLCs: subscriptions or polled reads, writes and browse.

asyncua runs on the client's own LoopThread; each blocking method hands it a coroutine and
waits at most timeout_s. asyncua and socket errors become Takt driver errors here. A client
connects once: after a lost link the caller's supervisor builds a new one.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import CancelledError
from typing import Any, TypeVar
from urllib.parse import urlparse

import msgspec
from asyncua import Client, Node, ua
from asyncua.common.ua_utils import data_type_to_variant_type

from drivers.errors import DeviceUnavailable, DriverError, FrameError
from drivers.loop_thread import LoopThread
from drivers.opcua.values import (
    Value,
    compatible,
    from_opcua,
    takt_type_for,
    to_variant,
    variant_for,
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

_DEADBANDS = {
    "none": ua.DeadbandType.None_,
    "absolute": ua.DeadbandType.Absolute,
    "percent": ua.DeadbandType.Percent,
}
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
_HIERARCHICAL = ua.NodeId(ua.ObjectIds.HierarchicalReferences)
_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)
_SERVER_OBJECT = ua.NodeId(ua.ObjectIds.Server)


class OpcuaTag(msgspec.Struct, frozen=True, kw_only=True):
    """One bound PLC variable and how its changes reach Takt."""

    name: str  # Takt signal name
    node: str  # NodeId string, e.g. "ns=2;s=Line1.PartPresent" or "ns=2;i=1005"
    type: str  # Takt value type, see values.py
    subscribe: bool = True  # False: read on each poll() instead
    publishing_interval_ms: float = 0.0  # 0 = as fast as the server allows
    sampling_interval_ms: float = 0.0
    queue_size: int = 1
    deadband_type: str = "none"  # "none" | "absolute" | "percent"
    deadband: float = 0.0


class BrowsedTag(msgspec.Struct, frozen=True, kw_only=True):
    """A variable found by browse(); data_type is the Takt type, or the OPC-UA one if none."""

    node: str
    path: str
    data_type: str
    writable: bool
    value: bool | int | float | str | None


class TagProblems(DriverError):
    """Problems with some bindings, by tag name."""

    summary = "bad bindings"

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        details = "; ".join(f"{name}: {text}" for name, text in self.problems.items())
        super().__init__(f"{self.summary}: {details}")


class UnknownNodes(TagProblems):
    """Bound nodes that do not exist on the server (or are not variables).

    `mismatched` holds the type problems of the other tags, found in the same pass, so a
    caller can report every problem at once.
    """

    summary = "unknown nodes"

    def __init__(self, problems: dict[str, str], mismatched: dict[str, str] | None = None
                 ) -> None:
        super().__init__(problems)
        self.mismatched = dict(mismatched or {})


class TypeMismatch(TagProblems):
    """Bindings whose declared type does not match the node's DataType."""

    summary = "type mismatch"


class MonitoringRefused(TagProblems):
    """Subscribed bindings the server will not monitor as asked (e.g. a deadband it refuses)."""

    summary = "monitoring refused"


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
            self._node_ids[tag.name] = _check_tag(tag)
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
        self._subtypes: dict[ua.NodeId, ua.VariantType | None] = {}
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
        return self._run(self._browse(max_depth, limit), self._timeout_s * (max_depth + 2))

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
        results = await self._read_attributes(
            [(self._node_ids[tag.name], attr) for tag in tags for attr in attributes]
        )
        mismatch: dict[str, str] = {}
        for index, tag in enumerate(tags):
            node_class, data_type, rank = results[3 * index : 3 * index + 3]
            if _bad(node_class):
                unknown[tag.name] = _node_problem(tag.node, node_class.StatusCode)
                continue
            if _value_of(node_class) != ua.NodeClass.Variable:
                kind = ua.NodeClass(_value_of(node_class)).name
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
        if _bad(data_type) or not isinstance(_value_of(data_type), ua.NodeId):
            return f"node {tag.node} has no readable DataType"
        if not _bad(rank) and isinstance(_value_of(rank), int) and _value_of(rank) >= 0:
            return f"node {tag.node} holds arrays; Takt binds scalars"
        variant_type = await self._variant_type(_value_of(data_type))
        if variant_type is None or not compatible(tag.type, variant_type):
            held = variant_type.name if variant_type is not None else "a structured type"
            hint = takt_type_for(variant_type) if variant_type is not None else None
            fix = f"; declare type = {hint!r}" if hint else ""
            return f"node {tag.node} holds {held}, not {tag.type}{fix}"
        return None

    async def _variant_type(self, data_type: ua.NodeId) -> ua.VariantType | None:
        identifier = data_type.Identifier
        if data_type.NamespaceIndex == 0 and isinstance(identifier, int) and 1 <= identifier <= 25:
            return ua.VariantType(identifier)
        if data_type not in self._subtypes:
            try:
                # A subtype (an enumeration, a vendor's "Temperature" Double...): walk up to
                # a built-in type; a few browse calls, once per such type.
                type_node = Node(self._ua.uaclient.session, data_type)
                found: ua.VariantType | None = await data_type_to_variant_type(type_node)
            except ua.UaError:
                found = None
            self._subtypes[data_type] = None if found is ua.VariantType.Variant else found
        return self._subtypes[data_type]

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
                DeadbandType=_DEADBANDS[tag.deadband_type],
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

    async def _read_attributes(
        self, pairs: Iterable[tuple[ua.NodeId, ua.AttributeIds]]
    ) -> list[ua.DataValue]:
        nodes = [ua.ReadValueId(NodeId=nid, AttributeId=attr) for nid, attr in pairs]
        if not nodes:
            return []  # servers answer an empty Read with BadNothingToDo
        params = ua.ReadParameters(
            NodesToRead=nodes, TimestampsToReturn=ua.TimestampsToReturn.Neither
        )
        return await self._ua.uaclient.read(params)

    async def _read(self, tags: list[OpcuaTag]) -> list[tuple[str, Value]]:
        results = await self._read_attributes(
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

    async def _browse(self, max_depth: int, limit: int) -> list[BrowsedTag]:
        found: list[tuple[ua.NodeId, str]] = []
        level: list[tuple[ua.NodeId, str]] = [(ua.NodeId(ua.ObjectIds.ObjectsFolder), "")]
        seen = {level[0][0]}
        for _ in range(max_depth):
            if not level or len(found) >= limit:
                break
            children: list[tuple[ua.NodeId, str]] = []
            for (_, path), refs in zip(level, await self._browse_level(level), strict=True):
                for ref in refs:
                    nid = ref.NodeId
                    # Properties (EURange, EngineeringUnits...) describe a variable; not tags.
                    if nid in seen or nid == _SERVER_OBJECT or ref.ReferenceTypeId == _HAS_PROPERTY:
                        continue
                    seen.add(nid)
                    child = (nid, f"{path}/{ref.BrowseName.Name}" if path else ref.BrowseName.Name)
                    children.append(child)
                    if ref.NodeClass == ua.NodeClass.Variable and len(found) < limit:
                        found.append(child)
            level = children
        return await self._describe_variables(found)

    async def _browse_level(self, level: list[tuple[ua.NodeId, str]]) -> list[list[Any]]:
        params = ua.BrowseParameters(NodesToBrowse=[
            ua.BrowseDescription(
                NodeId=nid,
                BrowseDirection=ua.BrowseDirection.Forward,
                ReferenceTypeId=_HIERARCHICAL,
                IncludeSubtypes=True,
                NodeClassMask=ua.NodeClass.Object | ua.NodeClass.Variable,
                ResultMask=ua.BrowseResultMask.All,
            )
            for nid, _ in level
        ])
        uaclient = self._ua.uaclient
        references: list[list[Any]] = []
        for result in await uaclient.browse(params):
            refs = list(result.References) if result.StatusCode.is_good() else []
            point = result.ContinuationPoint
            while point:
                (more,) = await uaclient.browse_next(
                    ua.BrowseNextParameters(ContinuationPoints=[point])
                )
                refs.extend(more.References)
                point = more.ContinuationPoint
            references.append(refs)
        return references

    async def _describe_variables(self, found: list[tuple[ua.NodeId, str]]) -> list[BrowsedTag]:
        attributes = (ua.AttributeIds.DataType, ua.AttributeIds.UserAccessLevel,
                      ua.AttributeIds.Value)
        results = await self._read_attributes(
            (nid, attr) for nid, _ in found for attr in attributes
        )
        tags: list[BrowsedTag] = []
        for index, (nid, path) in enumerate(found):
            data_type, access, data = results[3 * index : 3 * index + 3]
            type_node = _value_of(data_type) if not _bad(data_type) else None
            variant_type = None
            if isinstance(type_node, ua.NodeId):
                variant_type = await self._variant_type(type_node)
            takt_type = takt_type_for(variant_type) if variant_type is not None else None
            value: Value | None = None
            if takt_type is not None and not _bad(data):
                try:
                    value = from_opcua(takt_type, data.Value)
                except FrameError:
                    value = None
            writable = not _bad(access) and bool(
                (_value_of(access) or 0) & ua.AccessLevel.CurrentWrite.mask
            )
            tags.append(BrowsedTag(
                node=nid.to_string(),
                path=path,
                data_type=takt_type or _type_name(variant_type, type_node),
                writable=writable,
                value=value,
            ))
        return tags

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


def _check_tag(tag: OpcuaTag) -> ua.NodeId:
    where = f"tag {tag.name!r}"
    try:
        variant_for(tag.type)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if tag.deadband_type not in _DEADBANDS:
        raise ValueError(f"{where}: deadband_type must be one of {', '.join(_DEADBANDS)}")
    if not math.isfinite(tag.deadband) or tag.deadband < 0:
        raise ValueError(f"{where}: deadband must be a finite number >= 0")
    if tag.deadband_type != "none" and tag.type in ("bool", "string"):
        raise ValueError(f"{where}: a deadband applies to numbers, not {tag.type}")
    if tag.deadband_type == "percent" and tag.deadband > 100:
        raise ValueError(f"{where}: a percent deadband is 0..100")
    if tag.publishing_interval_ms < 0 or tag.sampling_interval_ms < 0 or tag.queue_size < 0:
        raise ValueError(f"{where}: intervals and queue_size must be >= 0")
    try:
        return ua.NodeId.from_string(tag.node)
    except (ua.UaStringParsingError, ValueError):
        raise ValueError(f"{where}: {tag.node!r} is not a NodeId (e.g. 'ns=2;s=Line1.X')") from None


def _abort(client: Client) -> bool:
    """Drop the socket at once (nothing flushed); True if there was one."""
    protocol = client.uaclient.protocol
    if protocol is None or protocol.transport is None:
        return False
    protocol.transport.abort()
    return True


def _type_name(variant_type: ua.VariantType | None, type_node: object) -> str:
    if variant_type is not None:
        return variant_type.name
    return type_node.to_string() if isinstance(type_node, ua.NodeId) else "unknown"


def _value_of(data: ua.DataValue) -> Any:
    return data.Value.Value if data.Value is not None else None


def _bad(data: ua.DataValue) -> bool:
    return data.StatusCode is not None and data.StatusCode.is_bad()


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
