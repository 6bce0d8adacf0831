"""/api/v1/users and /api/v1/api-keys: administration of who may use the station."""

from __future__ import annotations

from typing import Annotated

import msgspec
from quart import Blueprint
from quart_schema import document_response, tag

from actors.auth import (
    ApiKeyCreated,
    ApiKeyInfo,
    CreateApiKey,
    CreateUser,
    ListApiKeys,
    ListUsers,
    PasswordRejected,
    RevokeApiKey,
    UserExists,
    UserInfo,
)
from api.http import ask_actor, body, json_response
from api.problems import FieldError, Problem
from api.security import current_principal, requires
from controller.access import Role, Scope

__all__ = ["blueprint"]

blueprint = Blueprint("users", __name__, url_prefix="/api/v1")

_USERNAME = msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+(?!\n)$")


class NewUser(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, _USERNAME]
    password: str
    role: Role


class NewApiKey(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    scope: Scope


@blueprint.get("/users")
@tag(["users"])
@requires(Role.ADMIN)
@document_response(list[UserInfo])
async def list_users() -> object:
    return json_response(await ask_actor("auth", ListUsers()))


@blueprint.post("/users")
@tag(["users"])
@requires(Role.ADMIN, write=True)
@body(NewUser)
@document_response(UserInfo, 201)
async def create_user(data: NewUser) -> object:
    try:
        user = await ask_actor("auth", CreateUser(username=data.username, password=data.password,
                                                  role=data.role))
    except PasswordRejected as exc:
        raise Problem(422, "the password breaks the password rules", errors=[
            FieldError(field="password", message=p) for p in exc.problems]) from None
    except UserExists as exc:
        raise Problem(409, str(exc)) from None
    return json_response(user, 201)


@blueprint.get("/api-keys")
@tag(["users"])
@requires(Role.ADMIN)
@document_response(list[ApiKeyInfo])
async def list_keys() -> object:
    return json_response(await ask_actor("auth", ListApiKeys()))


@blueprint.post("/api-keys")
@tag(["users"])
@requires(Role.ADMIN, write=True)
@body(NewApiKey)
@document_response(ApiKeyCreated, 201)
async def create_key(data: NewApiKey) -> object:
    """Create a key for an integrator; the key is in this answer only, never again."""
    created = await ask_actor("auth", CreateApiKey(name=data.name, scope=data.scope,
                                                   created_by=current_principal().name))
    return json_response(created, 201)


@blueprint.delete("/api-keys/<int(max=9223372036854775807):key_id>")
@tag(["users"])
@requires(Role.ADMIN, write=True)
async def revoke_key(key_id: int) -> object:
    if not await ask_actor("auth", RevokeApiKey(key_id)):
        raise Problem(404, f"no active API key {key_id}")
    return json_response({"revoked": key_id})
