"""/api/v1/operators: the station's shop-floor operators (seed 000 "Operators").

Operators are the people coached at the station, not API users. Changes and authentication go
to the operators actor (argon2 runs there, off the trio thread); listings, RFID verify and
name lookup are read by the query actors. Changes are journaled as commands, never with a
password or a hash in them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from quart import Blueprint
from quart_schema import document_response, tag

from actors.bridge import ask
from actors.operators import (
    AddOperator,
    Authenticate,
    GetOperator,
    InvalidCredentials,
    ListOperators,
    LookupOperator,
    PasswordRejected,
    SetActive,
    SetEmail,
    SetName,
    SetPassword,
    SetRfid,
    SetRole,
    TooManyAttempts,
    VerifyRfid,
    operator_password_problems,
)
from actors.query import pick_query_actor
from api.http import ask_actor, body, facade, json_response
from api.problems import FieldError, Problem
from api.security import current_principal, requires
from controller.access import Role
from state.errors import DuplicateError, NotFound, StateError
from state.operators import Operator

__all__ = ["blueprint"]

blueprint = Blueprint("operators", __name__, url_prefix="/api/v1/operators")

_ID = "<int(max=9223372036854775807):operator_id>"
_VISIBLE = r"[^\s\x00-\x1f\x7f]"
Name = Annotated[str, Meta(min_length=1, max_length=64,
                           pattern=rf"^{_VISIBLE}(?:[^\x00-\x1f\x7f]*{_VISIBLE})?(?!\n)$",
                           description="1-64 characters, no control characters, no white "
                                       "space at either end")]
OperatorRole = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}(?!\n)$",
                                   examples=["operator", "lead", "trainee"],
                                   description="lower case, e.g. operator, lead, trainee")]
Rfid = Annotated[str, Meta(pattern=r"^[!-~]{1,64}(?!\n)$",
                           description="the badge's code: 1-64 printable ASCII characters")]
Email = Annotated[str, Meta(max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+(?!\n)$")]
Password = Annotated[str, Meta(max_length=1024,
                               description="8-128 characters, not only digits, not the "
                                           "operator's name")]
_Text = Annotated[str, Meta(max_length=256)]


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class NewOperator(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    first_name: Name
    last_name: Name
    role: OperatorRole = "operator"
    active: bool = True
    rfid: Rfid | None = None
    email: Email | None = None
    password: Password | None = None


class ActiveChange(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    active: bool


class RoleChange(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    role: OperatorRole


class NameChange(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    first_name: Name
    last_name: Name


class PasswordChange(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    password: Password | None
    """null removes the password (the operator then logs in by RFID only)."""


class RfidChange(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rfid: Rfid | None
    """null takes the badge away."""


class EmailChange(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    email: Email | None


class RfidQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rfid: _Text


class NameQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    first_name: _Text
    last_name: _Text


class Credentials(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    first_name: _Text
    last_name: _Text
    password: Annotated[str, Meta(max_length=1024)]


class PasswordCheck(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    password: Annotated[str, Meta(max_length=1024)]
    first_name: _Text = ""
    last_name: _Text = ""


class OperatorId(msgspec.Struct, frozen=True, kw_only=True):
    id: int


class PasswordVerdict(msgspec.Struct, frozen=True, kw_only=True):
    valid: bool
    problems: list[str]


# ---- plumbing ----------------------------------------------------------------------------------


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        raise Problem(404, str(exc)) from None
    except DuplicateError as exc:
        raise Problem(409, str(exc)) from None
    except PasswordRejected as exc:
        raise Problem(422, f"the password {'; '.join(exc.problems)}", errors=[
            FieldError(field="password", message=p) for p in exc.problems]) from None
    except TooManyAttempts as exc:
        raise Problem(429, str(exc),
                      headers={"Retry-After": str(max(1, round(exc.retry_after_s)))}) from None
    except InvalidCredentials as exc:
        raise Problem(401, str(exc)) from None
    except StateError as exc:
        raise Problem(503, f"the operator store is unavailable: {exc}",
                      headers={"Retry-After": "5"}) from None


async def _write(what: dict[str, Any], message: Any) -> Any:
    facade().runtime.ingest.command("api", {"by": current_principal().name, **what})
    with _refusals():
        return await ask_actor("operators", message)


async def _read(message: Any) -> Any:
    f = facade()
    with _refusals():
        return await ask(f.runtime, pick_query_actor(f.runtime.directory), message,
                         f.ask_timeout_s)


# ---- reads -------------------------------------------------------------------------------------


@blueprint.get("")
@tag(["operators"])
@requires(Role.OPERATOR)
@document_response(list[Operator])
async def list_operators() -> object:
    """Every operator, inactive ones included, by id."""
    return json_response(await _read(ListOperators()))


@blueprint.get("/active")
@tag(["operators"])
@requires(Role.OPERATOR)
@document_response(list[Operator])
async def list_active() -> object:
    """The active operators, by id."""
    return json_response(await _read(ListOperators(active_only=True)))


@blueprint.get(f"/{_ID}")
@tag(["operators"])
@requires(Role.OPERATOR)
@document_response(Operator)
async def get_operator(operator_id: int) -> object:
    """One operator; 404 if there is none with this id."""
    return json_response(await _read(GetOperator(operator_id)))


@blueprint.post("/rfid/verify")
@tag(["operators"])
@requires(Role.OPERATOR)
@body(RfidQuery)
@document_response(Operator)
async def verify_rfid(data: RfidQuery) -> object:
    """The active operator with this badge; 404 if none (unknown or inactive)."""
    return json_response(await _read(VerifyRfid(data.rfid)))


@blueprint.post("/lookup")
@tag(["operators"])
@requires(Role.OPERATOR)
@body(NameQuery)
@document_response(OperatorId)
async def lookup(data: NameQuery) -> object:
    """The id of the operator with this first and last name (any case); 404 if none."""
    operator_id = await _read(LookupOperator(first_name=data.first_name,
                                             last_name=data.last_name))
    return json_response(OperatorId(id=operator_id))


@blueprint.post("/authenticate")
@tag(["operators"])
@requires(Role.OPERATOR)
@body(Credentials)
@document_response(Operator)
async def authenticate(data: Credentials) -> object:
    """Authenticate an operator by name and password.

    Answers the operator if the name and password match and the operator is active, else 401.
    After 5 failures within a minute the operator is refused (429) until the minute is up."""
    with _refusals():
        operator = await ask_actor("operators", Authenticate(
            first_name=data.first_name, last_name=data.last_name, password=data.password))
    return json_response(operator)


@blueprint.post("/password/check")
@tag(["operators"])
@requires(Role.OPERATOR)
@body(PasswordCheck)
@document_response(PasswordVerdict)
async def check_password(data: PasswordCheck) -> object:
    """Check a password against the rules (and the operator's names, if given)."""
    problems = operator_password_problems(data.first_name, data.last_name, data.password)
    return json_response(PasswordVerdict(valid=not problems, problems=problems))


# ---- changes -----------------------------------------------------------------------------------


@blueprint.post("")
@tag(["operators"])
@requires(Role.ENGINEER, write=True)
@body(NewOperator)
@document_response(Operator, 201)
async def add_operator(data: NewOperator) -> object:
    """Add an operator.

    409 if the name, RFID or email belongs to another operator, 422 if the password breaks a
    rule."""
    journal = {f: getattr(data, f) for f in NewOperator.__struct_fields__ if f != "password"}
    operator = await _write({"operators": "add", **journal,
                             "has_password": data.password is not None},
                            AddOperator(**msgspec.structs.asdict(data)))
    return json_response(operator, 201, headers={"Location": f"{blueprint.url_prefix}/"
                                                             f"{operator.id}"})


@blueprint.patch(f"/{_ID}/active")
@tag(["operators"])
@requires(Role.ENGINEER, write=True)
@body(ActiveChange)
@document_response(Operator)
async def set_active(operator_id: int, data: ActiveChange) -> object:
    """Activate or deactivate; an inactive operator cannot log in at the station."""
    return json_response(await _write(
        {"operators": "set_active", "id": operator_id, "active": data.active},
        SetActive(operator_id=operator_id, active=data.active)))


@blueprint.patch(f"/{_ID}/role")
@tag(["operators"])
@requires(Role.ENGINEER, write=True)
@body(RoleChange)
@document_response(Operator)
async def set_role(operator_id: int, data: RoleChange) -> object:
    return json_response(await _write(
        {"operators": "set_role", "id": operator_id, "role": data.role},
        SetRole(operator_id=operator_id, role=data.role)))


@blueprint.patch(f"/{_ID}/name")
@tag(["operators"])
@requires(Role.ENGINEER, write=True)
@body(NameChange)
@document_response(Operator)
async def set_name(operator_id: int, data: NameChange) -> object:
    """Rename; 409 if another operator has this name."""
    return json_response(await _write(
        {"operators": "set_name", "id": operator_id, "first_name": data.first_name,
         "last_name": data.last_name},
        SetName(operator_id=operator_id, first_name=data.first_name,
                last_name=data.last_name)))


@blueprint.put(f"/{_ID}/password")
@tag(["operators"])
@requires(Role.ENGINEER, write=True)
@body(PasswordChange)
@document_response(Operator)
async def set_password(operator_id: int, data: PasswordChange) -> object:
    """Set the password (422 with the rule it breaks), or remove it with null."""
    return json_response(await _write(
        {"operators": "set_password", "id": operator_id,
         "has_password": data.password is not None},
        SetPassword(operator_id=operator_id, password=data.password)))


@blueprint.put(f"/{_ID}/rfid")
@tag(["operators"])
@requires(Role.ENGINEER, write=True)
@body(RfidChange)
@document_response(Operator)
async def set_rfid(operator_id: int, data: RfidChange) -> object:
    """Give the operator an RFID badge (409 if another has it), or take it away with null."""
    return json_response(await _write(
        {"operators": "set_rfid", "id": operator_id, "rfid": data.rfid},
        SetRfid(operator_id=operator_id, rfid=data.rfid)))


@blueprint.put(f"/{_ID}/email")
@tag(["operators"])
@requires(Role.ENGINEER, write=True)
@body(EmailChange)
@document_response(Operator)
async def set_email(operator_id: int, data: EmailChange) -> object:
    """Set the email step events name the operator by (409 if another operator has it)."""
    return json_response(await _write(
        {"operators": "set_email", "id": operator_id, "email": data.email},
        SetEmail(operator_id=operator_id, email=data.email)))
