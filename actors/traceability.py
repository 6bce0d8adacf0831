"""Traceability actor: every code a scanner reads is validated, judged in the scanner's role,
stored and published; codes, batches and the batch-accounting buffer change only here.

Scans are judged in groups: while more messages wait in the mailbox, scans accumulate; then
the group is judged in one transaction with one durable COMMIT, and only after it are the
results published, the API callers answered and the line told to eject. A COMMIT costs
milliseconds, so judging scans one transaction each would cap the line far below its rate.
A group that fails is judged again scan by scan, so one bad scan costs only itself.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import msgspec

from actors.base import handles
from actors.bus import Event
from actors.database import DatabaseActor
from actors.plc_messages import WriteSignal
from actors.printer_messages import PrintAccepted, PrintLabel
from actors.runtime import ActorUnavailable, Reply, Request, Runtime, tell
from actors.trace_messages import (
    AddCodes,
    BufferVerdict,
    CreateBatch,
    CreateCodes,
    CreatedBatch,
    CreatedCodes,
    ItemOutcome,
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
from controller.batches import BatchStatus, EffectKind, ScanContext
from controller.codes import validate
from controller.scanner_config import ScannerRole
from controller.trace_config import TraceabilityConfig
from state._sql import transaction
from state.batches import (
    BatchRow,
    add_to_batch,
    create_batch,
    find_batch,
    get_batch,
    set_batch_status,
)
from state.buffer import BufferLoad, consume_from_buffer, load_buffer, unload_buffer
from state.codes import CodeRow, NewCode, find_code, get_code, insert_codes, set_code_status
from state.errors import DuplicateError, NotFound, StateError, StoreBroken
from state.trace import (
    MAX_SHOWN,
    ScanOrigin,
    ScanResult,
    judge_adds,
    judge_scan,
    new_batch_identifier,
)

__all__ = ["TraceActor"]

MAX_GROUP = 256
"""Most scans judged in one transaction: bounds the latency the last of them waits."""
MAX_PENDING_REJECTIONS = 10_000


class _Scan(msgspec.Struct, frozen=True):
    text: str
    origin: ScanOrigin
    reply: Reply | None


class _Printed(msgspec.Struct, frozen=True):
    batch: dict[str, Any]
    printer: str
    job: int | None
    error: str | None


class TraceActor(DatabaseActor):
    # The disk or the database, not a request: fail, and let the supervisor restart the
    # actor on a fresh cursor.
    fatal = (StoreBroken,)

    def __init__(self, runtime: Runtime, name: str, config: TraceabilityConfig,
                 database: duckdb.DuckDBPyConnection, *, station_id: str = "station",
                 **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.config = config
        self.line_id = config.line_id or station_id
        self.pending: list[_Scan] = []
        # Codes of items the line ejected whose arrival on the reject chute is still to come,
        # oldest first; True where the item was a copy of a stored code (ScanContext).
        self.ejected: collections.OrderedDict[str, bool] = collections.OrderedDict()
        self.recent: collections.deque[ScanResult] = collections.deque(maxlen=config.recent)
        # The line's open batches as the last run of ADD scans left them: saves a statement
        # per group. Only this actor changes batches; any change but a run of ADDs drops it.
        self.context: ScanContext | None = None
        self.scans = self.refused = self.groups = 0
        # Subscribed before start, like the store: a read published while this actor starts
        # waits in its mailbox instead of being lost.
        self.subscription = self.bus.subscribe_actor(
            ["device.scanner.*.read"], self.actor_ref, name=f"{name}:scans", maxsize=100_000)

    def stopping(self) -> None:
        try:
            self._judge_pending()
        finally:
            self.bus.unsubscribe(self.subscription)
            super().stopping()

    def failed(self, error: BaseException) -> None:
        self.bus.unsubscribe(self.subscription)
        for scan in self.pending:
            if scan.reply is not None:
                scan.reply(None, error)
        self.pending.clear()
        super().failed(error)

    # ---- scans --------------------------------------------------------------------------------

    def _origin(self, role: ScannerRole, source: str) -> ScanOrigin:
        return ScanOrigin(role=role, source=source, industry=self.config.industry,
                          line_id=self.line_id, party=self.config.party,
                          auto_batch=self.config.auto_batch)

    @handles(Event)
    def _on_read(self, event: Event) -> None:
        data = event.data if isinstance(event.data, dict) else {}
        code, scanner = data.get("code"), data.get("scanner", "?")
        if code is None:  # a triggered read that found nothing: the scanner counts it
            return
        try:
            role = ScannerRole(data.get("role", ScannerRole.ADD))
        except ValueError:
            self.log.error("scan from %s has an unknown role %r", scanner, data.get("role"))
            return
        if role is ScannerRole.COACHING:
            return  # the station's hand scanner: the sequencer takes it
        self._queue(_Scan(str(code), self._origin(role, f"scanner.{scanner}"), None))

    @handles(ScanCode, deferred=True)
    def _scan(self, msg: ScanCode, reply: Reply) -> None:
        self._queue(_Scan(msg.code, self._origin(msg.role, "api"), reply))

    def _queue(self, scan: _Scan) -> None:
        self.pending.append(scan)
        if len(self.pending) >= MAX_GROUP or self.actor_inbox.empty():
            self._judge_pending()

    def _judge_pending(self) -> None:
        group, self.pending = self.pending, []
        if not group:
            return
        self.groups += 1
        started = time.perf_counter()
        ejected = dict(self.ejected)
        try:
            with transaction(self.con):
                results = self._judge_group(group, ejected)
        except StoreBroken:
            raise  # the disk or the database: restart on a fresh cursor (failed() answers)
        except StateError as exc:
            self.context = None
            self.log.warning("a group of %d scans failed (%s); judging them one by one",
                             len(group), exc)
            ejected = dict(self.ejected)
            results = [self._judge_alone(scan, ejected) for scan in group]
        self.runtime.metrics.trace_group_seconds.observe(time.perf_counter() - started)
        self.runtime.metrics.trace_group_scans.observe(len(group))
        self.ejected = collections.OrderedDict(ejected)
        while len(self.ejected) > MAX_PENDING_REJECTIONS:
            self.ejected.popitem(last=False)
        for done, (scan, result) in enumerate(zip(group, results, strict=True)):
            try:
                self._done(scan, result)
            except Exception as exc:
                # Committed but not all announced: answer every caller before failing.
                for rest in group[done + 1:]:
                    if rest.reply is not None:
                        rest.reply(None, exc)
                raise

    def _judge_group(self, group: list[_Scan], ejected: dict[str, bool]) -> list[ScanResult]:
        """Judge in order; a run of ADD scans (the line's bulk) together, the others alone."""
        results: list[ScanResult] = []
        start = 0
        while start < len(group):
            end = start
            while (end < len(group) and group[end].origin.role is ScannerRole.ADD
                   and group[end].origin == group[start].origin):
                end += 1
            if end > start:
                run = judge_adds(self.con, [s.text for s in group[start:end]],
                                 group[start].origin, now_us=self.clock.now_us(),
                                 context=self.context)
                self.context = run.context
                for result in run.results:
                    _track_ejection(ejected, result)
                results += run.results
                start = end
            else:
                self.context = None
                results.append(self._judge(group[start], ejected))
                start += 1
        return results

    def _judge(self, scan: _Scan, ejected: dict[str, bool]) -> ScanResult:
        result = judge_scan(self.con, scan.text, scan.origin, now_us=self.clock.now_us(),
                            pending_rejections=frozenset(ejected),
                            confirm_only=frozenset(c for c, copy in ejected.items() if copy))
        _track_ejection(ejected, result)
        return result

    def _judge_alone(self, scan: _Scan, ejected: dict[str, bool]) -> ScanResult:
        try:
            with transaction(self.con):
                return self._judge(scan, ejected)
        except StoreBroken:
            raise
        except StateError as exc:
            self.errors += 1
            self.log.error("scan %r from %s failed: %s", scan.text[:80], scan.origin.source, exc)
            # Not recorded: an item the line would push off on a refusal is pushed off.
            check = validate(scan.text, scan.origin.industry)
            result = ScanResult(
                ts_us=self.clock.now_us(), source=scan.origin.source,
                role=scan.origin.role.value, raw=scan.text[:MAX_SHOWN], valid=check.ok,
                accepted=False, effect=EffectKind.REFUSE.value, reason=f"not stored: {exc}",
                code=check.normalized, gtin=check.gtin, serial=check.serial,
                eject=scan.origin.role in _EJECTING_ROLES)
            _track_ejection(ejected, result)
            return result

    def _done(self, scan: _Scan, result: ScanResult) -> None:
        """After the commit: remember, publish, answer, and act on the line."""
        self.scans += 1
        self.refused += not result.accepted
        self.recent.append(result)
        source = scan.origin.source.removeprefix("scanner.")
        self.publish(f"trace.scan.{source}", msgspec.to_builtins(result), durable=True)
        if scan.reply is not None:
            scan.reply(result, None)
        if result.eject:
            self._eject(result)
        if result.batch_completed and result.batch_id is not None:
            self._completed(result.batch_id)

    @handles(RecentScans)
    def _recent(self, msg: RecentScans) -> list[ScanResult]:
        items = [r for r in reversed(self.recent) if msg.source in (None, r.source)]
        return items[: max(1, msg.limit)]

    @handles(ValidateCode)
    def _validate(self, msg: ValidateCode) -> Validation:
        check = validate(msg.code, msg.industry or self.config.industry)  # ValueError: industry
        stored = find_code(self.con, check.normalized) if check.normalized else None
        return Validation(valid=check.ok and stored is None,
                          message=check.reason or (f"duplicate: code is already stored "
                                                   f"({stored.status.label})" if stored else None),
                          duplicate=stored is not None, industry=check.industry, gtin=check.gtin,
                          serial=check.serial, code=check.normalized, canonical=check.canonical,
                          ais=check.ais, status=int(stored.status) if stored else None)

    # ---- the line: eject and labels --------------------------------------------------------

    def _eject(self, result: ScanResult) -> None:
        eject = self.config.eject
        if eject is None:
            return
        self._ask(f"plc:{eject.plc}", WriteSignal(signal=eject.signal, value=True),
                  lambda _, error: error and self._line_trouble(
                      "eject", {"code": result.code, "source": result.source}, error))

    def _completed(self, batch_id: int) -> None:
        row = self._batch(batch_id)
        if row is None:
            return
        batch = _batch_data(row, row.status, "traceability")
        self.publish(f"trace.batch.{row.kind.value}", batch, durable=True)
        rule = self.config.labels.for_kind(row.kind.value)
        if rule is None or row.status is not BatchStatus.COMPLETE:
            return
        offered = {"code": row.identifier, "identifier": row.identifier, "name": row.name or "",
                   "kind": row.kind.value, "count": str(row.member_count), "gtin": row.gtin or ""}
        me = self.actor_ref

        def printed(accepted: PrintAccepted | None, error: BaseException | None) -> None:
            job = accepted.job if accepted is not None else None
            try:
                tell(self.runtime, me, _Printed(batch, rule.printer, job,
                                                None if error is None else str(error)))
            except ActorUnavailable:
                pass

        self._ask(f"printer:{rule.printer}",
                  PrintLabel(offered=offered, template=rule.template, by="traceability"),
                  printed)

    @handles(_Printed)
    def _printed(self, msg: _Printed) -> None:
        data = {"identifier": msg.batch["identifier"], "kind": msg.batch["kind"],
                "printer": msg.printer, "job": msg.job, "error": msg.error}
        self.publish(f"trace.label.{msg.batch['kind']}", data, durable=True)

    def _ask(self, actor: str, message: Any,
             answered: Callable[[Any, BaseException | None], Any]) -> None:
        """Ask another actor with a callback (an actor never waits on another)."""
        try:
            tell(self.runtime, self.runtime.directory.get(actor), Request(message, answered))
        except ActorUnavailable as exc:
            answered(None, exc)

    def _line_trouble(self, what: str, data: dict[str, Any], error: BaseException) -> None:
        self.log.warning("%s failed: %s", what, error)
        self.publish(f"trace.{what}", {**data, "error": str(error)}, durable=True)

    # ---- codes --------------------------------------------------------------------------------

    def _before_write(self) -> None:
        """A write from the API: scans that came before it are judged first, and the line's
        context is read again after it."""
        self._judge_pending()
        self.context = None

    @handles(CreateCodes)
    def _create_codes(self, msg: CreateCodes) -> CreatedCodes:
        self._before_write()
        industry = msg.industry or self.config.industry
        outcomes: dict[int, ItemOutcome] = {}
        items: list[NewCode] = []
        index_of: list[int] = []
        for i, item in enumerate(msg.codes):
            check = validate(item.code, industry)
            if not check.ok:
                outcomes[i] = ItemOutcome(index=i, code=check.normalized or item.code[:200],
                                          created=False, reason=check.reason)
                continue
            party = item.party or self.config.party
            items.append(NewCode.from_validation(check, line_id=item.line_id or self.line_id,
                                                 source="api", party=party))
            index_of.append(i)
        batch = self._batch_named(msg.batch) if msg.batch is not None else None
        stored = insert_codes(self.con, items, now_us=self.clock.now_us(),
                              batch_id=batch.id if batch else None)
        for outcome in stored:
            i = index_of[outcome.index]
            outcomes[i] = ItemOutcome(index=i, code=outcome.code, created=outcome.created,
                                      id=outcome.id, duplicate=outcome.duplicate,
                                      reason=outcome.reason)
        items_out = [outcomes[i] for i in range(len(msg.codes))]
        created = sum(o.created for o in items_out)
        duplicates = sum(o.duplicate for o in items_out)
        self._after_batch_change(batch)
        return CreatedCodes(created=created, duplicates=duplicates,
                            refused=len(items_out) - created - duplicates, items=items_out)

    @handles(SetCodeStatus)
    def _set_status(self, msg: SetCodeStatus) -> CodeRow:
        self._before_write()
        row = get_code(self.con, msg.id)
        if row is None:
            raise NotFound(f"no code with id {msg.id}")
        batch_id = row.batch_id
        updated = set_code_status(self.con, row.code, msg.status, now_us=self.clock.now_us())
        self.publish("trace.code.status", {"id": row.id, "code": row.code,
                                           "from": int(row.status), "to": int(updated.status),
                                           "by": msg.by}, durable=True)
        if batch_id is not None and updated.batch_id is None:
            self._after_batch_change(self._batch(batch_id))
        return updated

    # ---- batches ------------------------------------------------------------------------------

    @handles(CreateBatch)
    def _create_batch(self, msg: CreateBatch) -> CreatedBatch:
        self._before_write()
        now = self.clock.now_us()
        identifier = msg.identifier or new_batch_identifier(self.con, msg.kind, now)
        try:
            row = create_batch(self.con, identifier=identifier, kind=msg.kind, now_us=now,
                               name=msg.name, capacity=msg.capacity, gtin=msg.gtin,
                               line_id=msg.line_id or self.line_id, device_id=msg.by)
        except DuplicateError:
            raise DuplicateError(f"a batch {identifier!r} already exists") from None
        items = add_to_batch(self.con, row.id, msg.codes, now_us=now) if msg.codes else []
        self.publish(f"trace.batch.{row.kind.value}", _batch_data(row, row.status, msg.by),
                     durable=True)
        after = self._after_batch_change(row)
        return CreatedBatch(batch=after or row, added=sum(i.ok for i in items), items=items)

    @handles(AddCodes)
    def _add_codes(self, msg: AddCodes) -> CreatedBatch:
        self._before_write()
        items = add_to_batch(self.con, msg.batch_id, msg.codes, now_us=self.clock.now_us())
        row = self._after_batch_change(self._batch(msg.batch_id))
        assert row is not None  # add_to_batch raised NotFound otherwise
        return CreatedBatch(batch=row, added=sum(i.ok for i in items), items=items)

    @handles(SetBatchStatus)
    def _set_batch_status(self, msg: SetBatchStatus) -> BatchRow:
        self._before_write()
        before = self._batch(msg.batch_id)
        if before is None:
            raise NotFound(f"no batch with id {msg.batch_id}")
        row = set_batch_status(self.con, msg.batch_id, msg.status, now_us=self.clock.now_us())
        if row.status is BatchStatus.COMPLETE:
            self._completed(row.id)
        else:
            self.publish(f"trace.batch.{row.kind.value}", _batch_data(row, row.status, msg.by),
                         durable=True)
        return row

    def _after_batch_change(self, batch: BatchRow | None) -> BatchRow | None:
        """A batch that filled up just now gets its event and its label."""
        if batch is None:
            return None
        row = self._batch(batch.id)
        if row is not None and row.status is BatchStatus.COMPLETE and (
                batch.status is not BatchStatus.COMPLETE or batch.member_count != row.member_count):
            self._completed(row.id)
        return row

    def _batch(self, batch_id: int) -> BatchRow | None:
        return get_batch(self.con, batch_id)

    def _batch_named(self, identifier: str) -> BatchRow:
        row = find_batch(self.con, identifier)
        if row is None:
            raise NotFound(f"no batch {identifier!r}")
        return row

    # ---- batch accounting ----------------------------------------------------------------------

    @handles(LoadBuffer)
    def _load(self, msg: LoadBuffer) -> BufferLoad:
        self._before_write()
        codes = msg.codes
        if codes is None:
            batch = self._batch_named(msg.batch_identifier)
            codes = [c for (c,) in self.con.execute(
                "SELECT code FROM batch_members WHERE batch_id = ? AND removed_us IS NULL",
                [batch.id]).fetchall()]
        else:
            codes = _normalized(codes, self.config.industry)
        loaded = load_buffer(self.con, msg.batch_identifier, codes, now_us=self.clock.now_us())
        self.publish("trace.buffer.loaded", {"batch_identifier": msg.batch_identifier,
                                             "loaded": loaded.loaded, "by": msg.by},
                     durable=True)
        return loaded

    @handles(UnloadBuffer)
    def _unload(self, msg: UnloadBuffer) -> int:
        self._before_write()
        dropped = unload_buffer(self.con, msg.batch_identifier)
        if dropped == 0:
            raise NotFound(f"batch {msg.batch_identifier!r} is not loaded in the buffer")
        self.publish("trace.buffer.unloaded", {"batch_identifier": msg.batch_identifier,
                                               "dropped": dropped, "by": msg.by}, durable=True)
        return dropped

    @handles(VerifyBuffer)
    def _verify(self, msg: VerifyBuffer) -> BufferVerdict:
        self._before_write()
        check = validate(msg.code, self.config.industry)
        code = check.normalized
        if code is None:
            return BufferVerdict(ok=False, outcome="invalid", reason=check.reason, code=None)
        found = consume_from_buffer(self.con, code, consumed_by=msg.consumed_by or msg.by,
                                    now_us=self.clock.now_us())
        return BufferVerdict(ok=found.ok, outcome=found.outcome.value, reason=found.reason,
                             code=code, batch_identifier=found.batch_identifier)


# Roles whose refusal pushes the item off the line (effect_of: eject=True on refusal).
_EJECTING_ROLES = frozenset({ScannerRole.ADD, ScannerRole.VERIFY_LOCAL_BUFFER,
                             ScannerRole.PACKAGE, ScannerRole.BOX})


def _track_ejection(ejected: dict[str, bool], result: ScanResult) -> None:
    """Note an ejected item (a copy when it was a duplicate or a code consumed before), and
    forget it when the reject chute confirms it."""
    if result.code is None:
        return
    if result.eject:
        copy = result.duplicate or result.role == ScannerRole.VERIFY_LOCAL_BUFFER
        ejected[result.code] = copy and ejected.get(result.code, True)
    elif result.accepted and result.effect == EffectKind.CONFIRM_REJECTION:
        ejected.pop(result.code, None)


def _normalized(codes: Sequence[str], industry: str) -> list[str]:
    """Codes as given (raw or normalized) in their normalized form; unreadable ones as given,
    so that a later scan of them is reported as not in the buffer."""
    out = []
    for text in codes:
        check = validate(text, industry)
        out.append(check.normalized or text)
    return out


def _batch_data(row: BatchRow, status: str, by: str) -> dict[str, Any]:
    """What `trace.batch.<kind>` says of a batch that opened, completed or moved."""
    return {"id": row.id, "identifier": row.identifier, "kind": row.kind.value,
            "status": str(status), "count": row.member_count, "name": row.name,
            "gtin": row.gtin, "by": by}
