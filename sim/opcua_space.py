"""A lean standard address space for simulated OPC-UA servers.

asyncua's full standard address space is 6,000 nodes from 9 MB of generated code and takes
seconds to load; `CoreInternalServer` loads only the few standard nodes a small server and
its clients use (the type roots, the folders, the Server object), in milliseconds, and
answers refused writes as a PLC does.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.crypto.permission_rules import User
from asyncua.server.address_space import AttributeService, NodeManagementService
from asyncua.server.internal_server import InternalServer

__all__ = ["CoreInternalServer"]

# Reference types: name, supertype, inverse name ("" for the abstract ones).
_REFERENCE_TYPES = (
    ("References", None, ""),
    ("HierarchicalReferences", "References", ""),
    ("NonHierarchicalReferences", "References", ""),
    ("HasChild", "HierarchicalReferences", ""),
    ("Aggregates", "HasChild", ""),
    ("Organizes", "HierarchicalReferences", "OrganizedBy"),
    ("HasEventSource", "HierarchicalReferences", "EventSourceOf"),
    ("HasNotifier", "HasEventSource", "NotifierOf"),
    ("HasSubtype", "HasChild", "SubtypeOf"),
    ("HasProperty", "Aggregates", "PropertyOf"),
    ("HasComponent", "Aggregates", "ComponentOf"),
    ("HasOrderedComponent", "HasComponent", "OrderedComponentOf"),
    ("HasTypeDefinition", "NonHierarchicalReferences", "TypeDefinitionOf"),
    ("HasModellingRule", "NonHierarchicalReferences", "ModellingRuleOf"),
    ("HasEncoding", "NonHierarchicalReferences", "EncodingOf"),
    ("GeneratesEvent", "NonHierarchicalReferences", "GeneratedBy"),
)
# Data, object and variable types: name, supertype; abstract ones are listed apart.
_DATA_TYPES = (
    ("BaseDataType", None), ("Boolean", "BaseDataType"), ("Number", "BaseDataType"),
    ("Integer", "Number"), ("UInteger", "Number"), ("SByte", "Integer"), ("Byte", "UInteger"),
    ("Int16", "Integer"), ("UInt16", "UInteger"), ("Int32", "Integer"), ("UInt32", "UInteger"),
    ("Int64", "Integer"), ("UInt64", "UInteger"), ("Float", "Number"), ("Double", "Number"),
    ("String", "BaseDataType"), ("DateTime", "BaseDataType"), ("UtcTime", "DateTime"),
    ("ByteString", "BaseDataType"), ("NodeId", "BaseDataType"),
    ("QualifiedName", "BaseDataType"), ("LocalizedText", "BaseDataType"),
    ("Structure", "BaseDataType"), ("Enumeration", "BaseDataType"), ("Range", "Structure"),
    ("EUInformation", "Structure"), ("BuildInfo", "Structure"),
    ("ServerStatusDataType", "Structure"), ("ServerState", "Enumeration"),
)
_OBJECT_TYPES = (("BaseObjectType", None), ("FolderType", "BaseObjectType"))
_VARIABLE_TYPES = (
    ("BaseVariableType", None),
    ("BaseDataVariableType", "BaseVariableType"),
    ("PropertyType", "BaseVariableType"),
)
_ABSTRACT = frozenset({
    "References", "HierarchicalReferences", "NonHierarchicalReferences", "HasChild",
    "Aggregates", "BaseDataType", "Number", "Integer", "UInteger", "Structure", "Enumeration",
    "BaseVariableType",
})
# Folders: ObjectIds name, browse name, parent, the type root it organizes.
_FOLDERS = (
    ("RootFolder", "Root", None, None),
    ("ObjectsFolder", "Objects", "RootFolder", None),
    ("TypesFolder", "Types", "RootFolder", None),
    ("ViewsFolder", "Views", "RootFolder", None),
    ("ObjectTypesFolder", "ObjectTypes", "TypesFolder", "BaseObjectType"),
    ("VariableTypesFolder", "VariableTypes", "TypesFolder", "BaseVariableType"),
    ("DataTypesFolder", "DataTypes", "TypesFolder", "BaseDataType"),
    ("ReferenceTypesFolder", "ReferenceTypes", "TypesFolder", "References"),
)
_LIMITS = (
    "MaxNodesPerRead", "MaxNodesPerHistoryReadData", "MaxNodesPerHistoryReadEvents",
    "MaxNodesPerWrite", "MaxNodesPerHistoryUpdateData", "MaxNodesPerHistoryUpdateEvents",
    "MaxNodesPerMethodCall", "MaxNodesPerBrowse", "MaxNodesPerRegisterNodes",
    "MaxNodesPerTranslateBrowsePathsToNodeIds", "MaxNodesPerNodeManagement",
    "MaxMonitoredItemsPerCall",
)
# The Server object and what asyncua's server writes at start: ObjectIds name, kind, data type.
_SERVER_NODES = (
    ("Server", "object", None),
    ("Server_ServerArray", "array", "String"),
    ("Server_NamespaceArray", "array", "String"),
    ("Server_ServiceLevel", "property", "Byte"),
    ("Server_ServerStatus", "variable", "ServerStatusDataType"),
    ("Server_ServerStatus_StartTime", "variable", "UtcTime"),
    ("Server_ServerStatus_CurrentTime", "variable", "UtcTime"),
    ("Server_ServerStatus_State", "variable", "ServerState"),
    ("Server_ServerStatus_SecondsTillShutdown", "variable", "UInt32"),
    ("Server_ServerStatus_ShutdownReason", "variable", "LocalizedText"),
    ("Server_ServerStatus_BuildInfo", "variable", "BuildInfo"),
    *(
        (f"Server_ServerStatus_BuildInfo_{field}", "variable", "String")
        for field in ("ProductUri", "ManufacturerName", "ProductName", "SoftwareVersion",
                      "BuildNumber")
    ),
    ("Server_ServerStatus_BuildInfo_BuildDate", "variable", "UtcTime"),
    ("Server_ServerCapabilities", "object", None),
    ("Server_ServerCapabilities_OperationLimits", "object", None),
    *((f"Server_ServerCapabilities_OperationLimits_{n}", "property", "UInt32") for n in _LIMITS),
)


class _PlcAttributeService(AttributeService):
    """Writes as a PLC answers them: a read-only variable is BadNotWritable."""

    async def write(
        self, params: ua.WriteParameters, user: User | None = None
    ) -> list[ua.StatusCode]:
        results = await (super().write(params) if user is None else super().write(params, user))
        # asyncua says BadUserAccessDenied for any refused access; with anonymous sessions
        # and no per-user rights the only cause is the variable's AccessLevel.
        denied = ua.StatusCodes.BadUserAccessDenied
        return [ua.StatusCode(ua.StatusCodes.BadNotWritable) if r.value == denied else r
                for r in results]


class CoreInternalServer(InternalServer):
    """asyncua's internal server with the lean standard address space; pass it as
    `Server(iserver=CoreInternalServer())`."""

    def __init__(self) -> None:
        super().__init__()
        self.attribute_service = _PlcAttributeService(self.aspace)

    async def load_standard_address_space(self, shelf_file: Path | None = None) -> None:
        service = self.node_mgt_service
        for item in _core_nodes():
            if list(service.try_add_nodes([item], check=False)):
                raise RuntimeError(f"standard node {item.BrowseName.Name} was refused")
        for folder, _, _, root in _FOLDERS:
            if root is not None:
                _link(service, _id(folder), _id(root))


def _id(name: str) -> ua.NodeId:
    return ua.NodeId(getattr(ua.ObjectIds, name), 0)


def _item(
    name: str,
    browse_name: str,
    node_class: ua.NodeClass,
    attrs: Any,
    parent: str | None,
    reference: str,
    type_definition: str | None = None,
) -> ua.AddNodesItem:
    return ua.AddNodesItem(
        RequestedNewNodeId=_id(name),
        BrowseName=ua.QualifiedName(browse_name, 0),
        NodeClass=node_class,
        ParentNodeId=_id(parent) if parent else ua.NodeId(),
        ReferenceTypeId=_id(reference),
        TypeDefinition=_id(type_definition) if type_definition else ua.NodeId(),
        NodeAttributes=attrs,
    )


def _core_nodes() -> Iterator[ua.AddNodesItem]:
    # Types first: every later node's type definition must already exist.
    for name, parent, inverse in _REFERENCE_TYPES:
        attrs = ua.ReferenceTypeAttributes(
            DisplayName=ua.LocalizedText(name),
            InverseName=ua.LocalizedText(inverse) if inverse else ua.LocalizedText(),
            IsAbstract=name in _ABSTRACT,
            Symmetric=name == "References",
        )
        yield _item(name, name, ua.NodeClass.ReferenceType, attrs, parent, "HasSubtype")
    for name, parent in _DATA_TYPES:
        attrs = ua.DataTypeAttributes(
            DisplayName=ua.LocalizedText(name), IsAbstract=name in _ABSTRACT
        )
        yield _item(name, name, ua.NodeClass.DataType, attrs, parent, "HasSubtype")
    for name, parent in _OBJECT_TYPES:
        attrs = ua.ObjectTypeAttributes(DisplayName=ua.LocalizedText(name), IsAbstract=False)
        yield _item(name, name, ua.NodeClass.ObjectType, attrs, parent, "HasSubtype")
    for name, parent in _VARIABLE_TYPES:
        attrs = ua.VariableTypeAttributes(
            DisplayName=ua.LocalizedText(name), IsAbstract=name in _ABSTRACT, ValueRank=-2
        )
        yield _item(name, name, ua.NodeClass.VariableType, attrs, parent, "HasSubtype")
    for name, browse_name, parent, _ in _FOLDERS:
        attrs = ua.ObjectAttributes(DisplayName=ua.LocalizedText(browse_name), EventNotifier=0)
        yield _item(
            name, browse_name, ua.NodeClass.Object, attrs, parent, "Organizes", "FolderType"
        )
    for name, kind, data_type in _SERVER_NODES:
        parent, _, browse_name = name.rpartition("_")
        if kind == "object":
            attrs = ua.ObjectAttributes(
                DisplayName=ua.LocalizedText(browse_name), EventNotifier=int(name == "Server")
            )
            reference = "Organizes" if name == "Server" else "HasComponent"
            yield _item(name, browse_name, ua.NodeClass.Object, attrs, parent or "ObjectsFolder",
                        reference, "BaseObjectType")
            continue
        assert data_type is not None
        attrs = ua.VariableAttributes(
            DisplayName=ua.LocalizedText(browse_name),
            DataType=_id(data_type),
            ValueRank=1 if kind == "array" else -1,
            AccessLevel=ua.AccessLevel.CurrentRead.mask,
            UserAccessLevel=ua.AccessLevel.CurrentRead.mask,
        )
        variable = kind == "variable"
        yield _item(name, browse_name, ua.NodeClass.Variable, attrs, parent,
                    "HasComponent" if variable else "HasProperty",
                    "BaseDataVariableType" if variable else "PropertyType")


def _link(service: NodeManagementService, folder: ua.NodeId, root: ua.NodeId) -> None:
    # A folder organizes its type root; both directions, as the standard nodeset has them.
    organizes = _id("Organizes")
    for source, target, forward in ((folder, root, True), (root, folder, False)):
        service.add_references([ua.AddReferencesItem(
            SourceNodeId=source, ReferenceTypeId=organizes, IsForward=forward,
            TargetNodeId=target, TargetNodeClass=ua.NodeClass.Unspecified,
        )])
