"""/api/v1/opcua/status and /api/v1/modbus/status: Takt's own servers for the line's PLCs."""

from __future__ import annotations

from quart import Blueprint
from quart_schema import tag

from actors.config import GetStationConfig, StationView
from api.http import ask_actor, json_response
from api.security import requires
from controller.access import Role
from controller.config import GatewaysConfig

__all__ = ["blueprint"]

blueprint = Blueprint("gateways", __name__, url_prefix="/api/v1")


async def _gateways() -> GatewaysConfig:
    view: StationView = await ask_actor("config", GetStationConfig())  # as it runs now
    return view.config.gateways


@blueprint.get("/opcua/status")
@tag(["gateways"])
@requires(Role.OPERATOR)
async def opcua_status() -> object:
    """The OPC-UA server: whether it runs, its endpoint and the nodes it exposes (seed 001)."""
    config = (await _gateways()).opcua
    if not config.enabled:
        return json_response({"enabled": False, "running": False,
                              "endpoint": f"opc.tcp://{config.host}:{config.port}{config.path}",
                              "station_count": 0, "nodes": []})
    from actors.gateway_opcua import GetOpcuaStatus

    return json_response(await ask_actor("gateway:opcua", GetOpcuaStatus()))


@blueprint.get("/modbus/status")
@tag(["gateways"])
@requires(Role.OPERATOR)
async def modbus_status() -> object:
    """The Modbus TCP server: whether it runs, where, and the writes it has taken."""
    config = (await _gateways()).modbus
    if not config.enabled:
        return json_response({"enabled": False, "running": False,
                              "endpoint": f"{config.host}:{config.port}"})
    from actors.gateway_modbus import GetStatus

    return json_response(await ask_actor("gateway:modbus", GetStatus()))
