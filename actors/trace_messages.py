"""Messages of the traceability actor (writes and scans) and the query actors (code and batch
reads), shared with the facade."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from controller.batches import BatchKind, BatchStatus
from controller.codes import CodeStatus
from controller.scanner_config import ScannerRole
from state.batches import BatchRow, MemberOutcome, Membership
from state.codes import CodeRow

__all__ = [
    "AddCodes",
    "BatchDetail",
    "BufferVerdict",
    "CodeDetail",
    "CodeIn",
    "CountCodes",
    "CreateBatch",
    "CreateCodes",
    "CreatedBatch",
    "CreatedCodes",
    "GetBatch",
    "GetBufferSummary",
    "GetCode",
    "ItemOutcome",
    "ListBatches",
    "ListCodes",
    "LoadBuffer",
    "RecentScans",
    "ScanCode",
    "SetBatchStatus",
    "SetCodeStatus",
    "UnloadBuffer",
    "ValidateCode",
    "Validation",
    "VerifyBuffer",
]

Text = Annotated[str, Meta(min_length=1, max_length=512)]
Identifier = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+(?!\n)$")]


# ---- scans ------------------------------------------------------------------------------------


class ValidateCode(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Validate a code against the station's industry (or another) without storing it."""

    code: Text
    industry: str | None = None


class Validation(msgspec.Struct, frozen=True, kw_only=True):
    valid: bool
    message: str | None
    duplicate: bool
    industry: str
    gtin: str | None = None
    serial: str | None = None
    code: str | None = None  # the normalized code (01 + GTIN + 21 + serial, or 00 + SSCC)
    canonical: str | None = None  # GS1 element strings with GS separators
    ais: dict[str, str] = {}
    status: int | None = None  # the stored code's status when duplicate


class ScanCode(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A scan entered through the API: judged exactly like a reader's, in the given role."""

    code: Text
    role: ScannerRole = ScannerRole.ADD
    by: str = "api"


class RecentScans(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    limit: int = 50
    source: str | None = None


# ---- codes ------------------------------------------------------------------------------------


class CodeIn(msgspec.Struct, frozen=True, kw_only=True):
    code: Text
    line_id: Annotated[str, Meta(max_length=64)] | None = None
    party: Annotated[str, Meta(max_length=64)] | None = None


class CreateCodes(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Store codes in bulk (e.g. from an ERP); each is validated and checked for duplicates."""

    codes: Annotated[list[CodeIn], Meta(min_length=1, max_length=10_000)]
    batch: Identifier | None = None  # the open batch they join, by identifier
    industry: str | None = None
    by: str = "api"


class ItemOutcome(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    code: str
    created: bool
    id: int | None = None
    duplicate: bool = False
    reason: str | None = None


class CreatedCodes(msgspec.Struct, frozen=True, kw_only=True):
    created: int
    duplicates: int
    refused: int
    items: list[ItemOutcome]


class ListCodes(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    status: CodeStatus | None = None
    batch_id: int | None = None
    line_id: str | None = None
    source: str | None = None
    code: str | None = None
    from_us: int | None = None
    to_us: int | None = None
    limit: int = 100
    cursor: int | None = None


class GetCode(msgspec.Struct, frozen=True, tag=True):
    id: int


class CodeDetail(msgspec.Struct, frozen=True, kw_only=True):
    code: CodeRow
    batches: list[Membership]  # every stay in a batch, oldest first


class CountCodes(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    line_id: str | None = None
    from_us: int | None = None
    to_us: int | None = None


class SetCodeStatus(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    id: int
    status: CodeStatus
    by: str = "api"


# ---- batches ----------------------------------------------------------------------------------


class CreateBatch(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    kind: BatchKind = BatchKind.BATCH
    identifier: Identifier | None = None  # generated (B-2026-000001) when left out
    name: Annotated[str, Meta(max_length=200)] | None = None
    capacity: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    gtin: Annotated[str, Meta(pattern=r"^\d{14}(?!\n)$")] | None = None
    line_id: Annotated[str, Meta(max_length=64)] | None = None
    codes: Annotated[list[Text], Meta(max_length=10_000)] = []
    by: str = "api"


class CreatedBatch(msgspec.Struct, frozen=True, kw_only=True):
    batch: BatchRow
    added: int
    items: list[MemberOutcome]


class ListBatches(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    status: BatchStatus | None = None
    kind: BatchKind | None = None
    device_id: str | None = None
    line_id: str | None = None
    limit: int = 100
    cursor: int | None = None


class GetBatch(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    id: int
    limit: int = 1000  # codes listed with the batch


class BatchDetail(msgspec.Struct, frozen=True, kw_only=True):
    batch: BatchRow
    codes: list[CodeRow]
    packages: list[BatchRow]  # packages nested in a box
    more_codes: bool


class AddCodes(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    batch_id: int
    codes: Annotated[list[Text], Meta(min_length=1, max_length=10_000)]
    by: str = "api"


class SetBatchStatus(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    batch_id: int
    status: BatchStatus
    by: str = "api"


# ---- batch accounting -------------------------------------------------------------------------


class LoadBuffer(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Load a production batch's codes into the buffer: the codes given, or else the codes
    stored in the batch of that identifier."""

    batch_identifier: Identifier
    codes: Annotated[list[Text], Meta(max_length=1_000_000)] | None = None
    by: str = "api"


class UnloadBuffer(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    batch_identifier: Identifier
    by: str = "api"


class VerifyBuffer(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Check a code against the loaded buffer and consume it when it is there and unused."""

    code: Text
    consumed_by: Annotated[str, Meta(max_length=64)] | None = None
    by: str = "api"


class BufferVerdict(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    outcome: str
    reason: str | None
    code: str | None
    batch_identifier: str | None = None


class GetBufferSummary(msgspec.Struct, frozen=True, tag=True):
    pass
