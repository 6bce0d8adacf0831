"""Reading an OPC-UA server's address space: node attributes, DataTypes, browsing for tags.

`AddressSpace` works on the loop of the client that owns the session; it serves the
client's binding checks and its browse().
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from asyncua import Client, Node, ua
from asyncua.common.ua_utils import data_type_to_variant_type

from drivers.errors import FrameError
from drivers.opcua.values import Value, from_opcua, takt_type_for

__all__ = ["AddressSpace", "BrowsedTag", "is_bad", "value_of"]

_HIERARCHICAL = ua.NodeId(ua.ObjectIds.HierarchicalReferences)
_HAS_PROPERTY = ua.NodeId(ua.ObjectIds.HasProperty)
_SERVER_OBJECT = ua.NodeId(ua.ObjectIds.Server)


class BrowsedTag(msgspec.Struct, frozen=True, kw_only=True):
    """A variable found by browse(); data_type is the Takt type, or the OPC-UA one if none."""

    node: str
    path: str
    data_type: str
    writable: bool
    value: bool | int | float | str | None


class AddressSpace:
    """The address space behind one session; session() is the connected asyncua client."""

    def __init__(self, session: Callable[[], Client]) -> None:
        # Asked on every call, so a session dropped meanwhile fails as the client decides.
        self._session = session
        self._subtypes: dict[ua.NodeId, ua.VariantType | None] = {}

    async def read_attributes(
        self, pairs: Iterable[tuple[ua.NodeId, ua.AttributeIds]]
    ) -> list[ua.DataValue]:
        """One Read call for (node, attribute) pairs, answers in the same order."""
        nodes = [ua.ReadValueId(NodeId=nid, AttributeId=attr) for nid, attr in pairs]
        if not nodes:
            return []  # servers answer an empty Read with BadNothingToDo
        params = ua.ReadParameters(
            NodesToRead=nodes, TimestampsToReturn=ua.TimestampsToReturn.Neither
        )
        return await self._session().uaclient.read(params)

    async def variant_type(self, data_type: ua.NodeId) -> ua.VariantType | None:
        """The built-in type a DataType node is or derives from; None for structures."""
        identifier = data_type.Identifier
        if data_type.NamespaceIndex == 0 and isinstance(identifier, int) and 1 <= identifier <= 25:
            return ua.VariantType(identifier)
        if data_type not in self._subtypes:
            try:
                # A subtype (an enumeration, a vendor's "Temperature" Double...): walk up to
                # a built-in type; a few browse calls, once per such type.
                type_node = Node(self._session().uaclient.session, data_type)
                found: ua.VariantType | None = await data_type_to_variant_type(type_node)
            except ua.UaError:
                found = None
            self._subtypes[data_type] = None if found is ua.VariantType.Variant else found
        return self._subtypes[data_type]

    async def browse(self, max_depth: int, limit: int) -> list[BrowsedTag]:
        """Variables under the Objects folder (not the Server object), breadth first."""
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
        uaclient = self._session().uaclient
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
        results = await self.read_attributes(
            (nid, attr) for nid, _ in found for attr in attributes
        )
        tags: list[BrowsedTag] = []
        for index, (nid, path) in enumerate(found):
            data_type, access, data = results[3 * index : 3 * index + 3]
            type_node = value_of(data_type) if not is_bad(data_type) else None
            variant_type = None
            if isinstance(type_node, ua.NodeId):
                variant_type = await self.variant_type(type_node)
            takt_type = takt_type_for(variant_type) if variant_type is not None else None
            value: Value | None = None
            if takt_type is not None and not is_bad(data):
                try:
                    value = from_opcua(takt_type, data.Value)
                except FrameError:
                    value = None
            writable = not is_bad(access) and bool(
                (value_of(access) or 0) & ua.AccessLevel.CurrentWrite.mask
            )
            tags.append(BrowsedTag(
                node=nid.to_string(),
                path=path,
                data_type=takt_type or _type_name(variant_type, type_node),
                writable=writable,
                value=value,
            ))
        return tags


def value_of(data: ua.DataValue) -> Any:
    """The plain value a DataValue holds (None if it holds none)."""
    return data.Value.Value if data.Value is not None else None


def is_bad(data: ua.DataValue) -> bool:
    """True if the server answered with a Bad status."""
    return data.StatusCode is not None and data.StatusCode.is_bad()


def _type_name(variant_type: ua.VariantType | None, type_node: object) -> str:
    if variant_type is not None:
        return variant_type.name
    return type_node.to_string() if isinstance(type_node, ua.NodeId) else "unknown"
