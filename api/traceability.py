"""Traceability (seed 002 "Bottles", "Batches", "Scanner", "Партионный учёт"): marking codes,
scans entered or validated through the API, batches and aggregation, batch accounting.

Writes go to the traceability actor, which judges them in line with the scanners' reads;
reads go to the query actors. Seed 002's bottles are called codes here.
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
from actors.query import pick_query_actor
from actors.trace_messages import (
    AddCodes,
    BatchDetail,
    BufferVerdict,
    CodeDetail,
    CodeIn,
    CountCodes,
    CreateBatch,
    CreateCodes,
    CreatedBatch,
    CreatedCodes,
    GetBatch,
    GetBufferSummary,
    GetCode,
    ListBatches,
    ListCodes,
    LoadBuffer,
    RecentScans,
    ScanCode,
    SetBatchStatus,
    SetCodeStatus,
    UnloadBuffer,
    ValidateCode,
    Validation,
    VerifyBuffer,
)
from api.http import ask_actor, body, facade, json_response, query
from api.problems import Problem
from api.security import current_principal, requires
from controller.access import Role
from controller.batches import BatchKind, BatchStatus
from controller.codes import CodeStatus
from controller.scanner_config import ScannerRole
from state.batches import BatchPage, BatchRow
from state.buffer import BufferLoad, BufferSummary
from state.codes import CodePage, CodeRow
from state.errors import DuplicateError, NotFound, TransitionError
from state.trace import ScanResult

__all__ = ["accounting_blueprint", "batches_blueprint", "codes_blueprint", "scanner_blueprint"]

scanner_blueprint = Blueprint("scanner", __name__, url_prefix="/api/v1/scanner")
codes_blueprint = Blueprint("codes", __name__, url_prefix="/api/v1/codes")
batches_blueprint = Blueprint("batches", __name__, url_prefix="/api/v1/batches")
accounting_blueprint = Blueprint("batch_accounting", __name__,
                                 url_prefix="/api/v1/batch-accounting")

MAX_LIMIT = 1000
Limit = Annotated[int, Meta(ge=1, le=MAX_LIMIT)]
Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Micros = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Code = Annotated[str, Meta(min_length=1, max_length=512)]
Ident = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+(?!\n)$")]


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class CodeBody(_In):
    code: Code
    industry: Annotated[str, Meta(max_length=32)] | None = None


class ScanBody(_In):
    code: Code
    role: ScannerRole = ScannerRole.ADD


class RecentQuery(_In):
    limit: Limit = 50
    source: Annotated[str, Meta(max_length=64)] | None = None  # `api`, `scanner.<name>`


class CodesQuery(_In):
    status: Annotated[int, Meta(ge=0, le=5)] | None = None
    batch_id: Id | None = None
    line_id: Annotated[str, Meta(max_length=64)] | None = None
    source: Annotated[str, Meta(max_length=64)] | None = None
    code: Code | None = None  # the normalized code: a lookup by value
    from_us: Micros | None = None
    to_us: Micros | None = None
    limit: Limit = 100
    cursor: Id | None = None


class CountQuery(_In):
    line_id: Annotated[str, Meta(max_length=64)] | None = None
    from_us: Micros | None = None
    to_us: Micros | None = None


class NewCodes(_In):
    codes: Annotated[list[CodeIn], Meta(min_length=1, max_length=10_000)]
    batch: Ident | None = None  # identifier of an open batch the codes join
    industry: Annotated[str, Meta(max_length=32)] | None = None


class StatusBody(_In):
    status: CodeStatus


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    total: int
    by_status: dict[str, int]  # "0".."5" as seed 002 numbers them


class NewBatch(_In):
    kind: BatchKind = BatchKind.BATCH
    identifier: Ident | None = None
    name: Annotated[str, Meta(max_length=200)] | None = None
    capacity: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    gtin: Annotated[str, Meta(pattern=r"^\d{14}(?!\n)$")] | None = None
    line_id: Annotated[str, Meta(max_length=64)] | None = None
    codes: Annotated[list[Code], Meta(max_length=10_000)] = []


class BatchesQuery(_In):
    status: BatchStatus | None = None
    kind: BatchKind | None = None
    device_id: Annotated[str, Meta(max_length=64)] | None = None
    line_id: Annotated[str, Meta(max_length=64)] | None = None
    limit: Limit = 100
    cursor: Id | None = None


class BatchQuery(_In):
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 1000


class CodesBody(_In):
    codes: Annotated[list[Code], Meta(min_length=1, max_length=10_000)]


class BatchStatusBody(_In):
    status: BatchStatus


class LoadBody(_In):
    batch_identifier: Ident
    codes: Annotated[list[Code], Meta(max_length=1_000_000)] | None = None


class UnloadQuery(_In):
    batch: Ident


class VerifyBody(_In):
    code: Code
    consumed_by: Annotated[str, Meta(max_length=64)] | None = None


class Unloaded(msgspec.Struct, frozen=True, kw_only=True):
    batch_identifier: str
    dropped: int


@contextmanager
def _refusals() -> Iterator[None]:
    """The store's refusals as problems: unknown -> 404, a rule -> 409, a bad value -> 422."""
    try:
        yield
    except NotFound as exc:
        raise Problem(404, str(exc)) from None
    except (TransitionError, DuplicateError) as exc:
        raise Problem(409, str(exc)) from None
    except ValueError as exc:  # e.g. an unknown industry
        raise Problem(422, str(exc)) from None


async def _write(message: Any) -> Any:
    with _refusals():
        return await ask_actor("traceability", message)


async def _read(message: Any) -> Any:
    f = facade()
    with _refusals():
        return await ask(f.runtime, pick_query_actor(f.runtime.directory), message,
                         f.ask_timeout_s)


def _by() -> str:
    return current_principal().name


def _range(from_us: int | None, to_us: int | None) -> None:
    if from_us is not None and to_us is not None and from_us > to_us:
        raise Problem(400, "from_us must not be after to_us")


# ---- /api/v1/scanner ----------------------------------------------------------------------------


@scanner_blueprint.post("/validate")
@tag(["traceability"])
@requires(Role.OPERATOR)
@body(CodeBody)
@document_response(Validation)
async def validate_code(data: CodeBody) -> object:
    """Validate a code (GS1, the industry's layout, duplicates) without storing it."""
    return json_response(await _write(ValidateCode(code=data.code, industry=data.industry)))


@scanner_blueprint.post("/scan")
@tag(["traceability"])
@requires(Role.OPERATOR, write=True)
@body(ScanBody)
@document_response(ScanResult)
async def scan(data: ScanBody) -> object:
    """Process a scan as a reader in `role` would: validate, store, aggregate; answered after
    the commit. A refused scan is answered 200 with accepted = false and the reason."""
    by = _by()
    facade().runtime.ingest.command("api", {"by": by, "scan": data.code[:200],
                                            "role": data.role.value})
    return json_response(await _write(ScanCode(code=data.code, role=data.role, by=by)))


@scanner_blueprint.get("/recent")
@tag(["traceability"])
@requires(Role.OPERATOR)
@query(RecentQuery)
@document_response(list[ScanResult])
async def recent(q: RecentQuery) -> object:
    """The latest judged scans of every reader and the API, newest first."""
    return json_response(await _write(RecentScans(limit=q.limit, source=q.source)))


# ---- /api/v1/codes ------------------------------------------------------------------------------


@codes_blueprint.get("")
@tag(["traceability"])
@requires(Role.OPERATOR)
@query(CodesQuery)
@document_response(CodePage)
async def list_codes(q: CodesQuery) -> object:
    """Codes, newest first; created_us in [from_us, to_us); pass next_cursor as cursor."""
    _range(q.from_us, q.to_us)
    status = CodeStatus(q.status) if q.status is not None else None
    return json_response(await _read(ListCodes(
        status=status, batch_id=q.batch_id, line_id=q.line_id, source=q.source, code=q.code,
        from_us=q.from_us, to_us=q.to_us, limit=q.limit, cursor=q.cursor)))


@codes_blueprint.post("")
@tag(["traceability"])
@requires(Role.ENGINEER, write=True)
@body(NewCodes)
@document_response(CreatedCodes, 201)
async def create_codes(data: NewCodes) -> object:
    """Store codes in bulk; each item says created, duplicate or why it was refused."""
    by = _by()
    facade().runtime.ingest.command("api", {"by": by, "create_codes": len(data.codes),
                                            "batch": data.batch})
    created = await _write(CreateCodes(codes=data.codes, batch=data.batch,
                                       industry=data.industry, by=by))
    return json_response(created, status=201 if created.created else 200)


@codes_blueprint.get("/count")
@tag(["traceability"])
@requires(Role.OPERATOR)
@query(CountQuery)
@document_response(Counts)
async def count_codes(q: CountQuery) -> object:
    """How many codes are in each status (0 Created .. 5 Deleted)."""
    _range(q.from_us, q.to_us)
    by_status = await _read(CountCodes(line_id=q.line_id, from_us=q.from_us, to_us=q.to_us))
    return json_response(Counts(total=sum(by_status.values()), by_status=by_status))


@codes_blueprint.get("/<int(max=9223372036854775807):code_id>")
@tag(["traceability"])
@requires(Role.OPERATOR)
@document_response(CodeDetail)
async def get_code(code_id: int) -> object:
    """One code with every batch it has been in."""
    return json_response(await _read(GetCode(code_id)))


@codes_blueprint.patch("/<int(max=9223372036854775807):code_id>/status")
@tag(["traceability"])
@requires(Role.ENGINEER, write=True)
@body(StatusBody)
@document_response(CodeRow)
async def set_status(code_id: int, data: StatusBody) -> object:
    """Move a code to another status; only the legal moves of seed 002's statuses (409)."""
    by = _by()
    facade().runtime.ingest.command("api", {"by": by, "code": code_id,
                                            "status": int(data.status)})
    return json_response(await _write(SetCodeStatus(id=code_id,
                                                    status=data.status, by=by)))


# ---- /api/v1/batches ----------------------------------------------------------------------------


@batches_blueprint.get("")
@tag(["traceability"])
@requires(Role.OPERATOR)
@query(BatchesQuery)
@document_response(BatchPage)
async def list_batches(q: BatchesQuery) -> object:
    """Batches, packages and boxes, newest first."""
    return json_response(await _read(ListBatches(
        status=q.status, kind=q.kind, device_id=q.device_id, line_id=q.line_id, limit=q.limit,
        cursor=q.cursor)))


@batches_blueprint.post("")
@tag(["traceability"])
@requires(Role.OPERATOR, write=True)
@body(NewBatch)
@document_response(CreatedBatch, 201)
async def create_batch(data: NewBatch) -> object:
    """Open a batch, package or box (the newest open one of its kind takes the line's scans),
    optionally with stored codes in it."""
    by = _by()
    facade().runtime.ingest.command("api", {"by": by, "create_batch": data.identifier,
                                            "kind": data.kind.value})
    created = await _write(CreateBatch(
        kind=data.kind, identifier=data.identifier, name=data.name, capacity=data.capacity,
        gtin=data.gtin, line_id=data.line_id, codes=data.codes, by=by))
    return json_response(created, status=201)


@batches_blueprint.get("/<int(max=9223372036854775807):batch_id>")
@tag(["traceability"])
@requires(Role.OPERATOR)
@query(BatchQuery)
@document_response(BatchDetail)
async def get_batch(batch_id: int, q: BatchQuery) -> object:
    """A batch with its codes (up to limit) and the packages nested in it."""
    return json_response(await _read(GetBatch(id=batch_id, limit=q.limit)))


@batches_blueprint.post("/<int(max=9223372036854775807):batch_id>/codes")
@tag(["traceability"])
@requires(Role.OPERATOR, write=True)
@body(CodesBody)
@document_response(CreatedBatch)
async def add_codes(batch_id: int, data: CodesBody) -> object:
    """Stored codes (normalized) join the batch; each is reported; a full batch completes."""
    by = _by()
    facade().runtime.ingest.command("api", {"by": by, "batch": batch_id,
                                            "add_codes": len(data.codes)})
    return json_response(await _write(AddCodes(batch_id=batch_id,
                                               codes=data.codes, by=by)))


@batches_blueprint.post("/<int(max=9223372036854775807):batch_id>/complete")
@tag(["traceability"])
@requires(Role.OPERATOR, write=True)
@document_response(BatchRow)
async def complete(batch_id: int) -> object:
    """Close an open batch by hand (it prints its label if one is configured)."""
    return await _set_batch_status(batch_id, BatchStatus.COMPLETE)


@batches_blueprint.post("/<int(max=9223372036854775807):batch_id>/status")
@tag(["traceability"])
@requires(Role.ENGINEER, write=True)
@body(BatchStatusBody)
@document_response(BatchRow)
async def batch_status(batch_id: int, data: BatchStatusBody) -> object:
    """Move a batch: open, complete, sent, synced or cancelled, with its codes (409 if not
    allowed)."""
    return await _set_batch_status(batch_id, data.status)


async def _set_batch_status(batch_id: int, status: BatchStatus) -> object:
    by = _by()
    facade().runtime.ingest.command("api", {"by": by, "batch": batch_id, "status": status.value})
    return json_response(await _write(SetBatchStatus(batch_id=batch_id,
                                                     status=status, by=by)))


# ---- /api/v1/batch-accounting -------------------------------------------------------------------


@accounting_blueprint.post("/buffer/load")
@tag(["traceability"])
@requires(Role.ENGINEER, write=True)
@body(LoadBody)
@document_response(BufferLoad)
async def load(data: LoadBody) -> object:
    """Load a production batch into the buffer: the codes given, or else the codes stored in
    the batch of that identifier. Loading again adds only what is new."""
    by = _by()
    facade().runtime.ingest.command("api", {"by": by, "load_buffer": data.batch_identifier})
    return json_response(await _write(LoadBuffer(batch_identifier=data.batch_identifier,
                                                 codes=data.codes, by=by)))


@accounting_blueprint.get("/buffer")
@tag(["traceability"])
@requires(Role.OPERATOR)
@document_response(list[BufferSummary])
async def buffer() -> object:
    """Each loaded batch with its loaded, consumed and remaining counts."""
    return json_response(await _read(GetBufferSummary()))


@accounting_blueprint.delete("/buffer")
@tag(["traceability"])
@requires(Role.ENGINEER, write=True)
@query(UnloadQuery)
@document_response(Unloaded)
async def unload(q: UnloadQuery) -> object:
    """Drop a batch from the buffer (`?batch=<identifier>`)."""
    by = _by()
    facade().runtime.ingest.command("api", {"by": by, "unload_buffer": q.batch})
    dropped = await _write(UnloadBuffer(batch_identifier=q.batch, by=by))
    return json_response(Unloaded(batch_identifier=q.batch, dropped=dropped))


@accounting_blueprint.post("/verify")
@tag(["traceability"])
@requires(Role.OPERATOR, write=True)
@body(VerifyBody)
@document_response(BufferVerdict)
async def verify(data: VerifyBody) -> object:
    """Check a code against the loaded buffer and consume it (each code once)."""
    by = _by()
    return json_response(await _write(VerifyBuffer(code=data.code,
                                                   consumed_by=data.consumed_by, by=by)))
