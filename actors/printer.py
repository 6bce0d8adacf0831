"""Printer actor: one per label printer (Zebra ZPL over raw TCP), with a durable job queue.

A print request renders the printer's template, and the job is stored (state `queued`)
before the request is answered. Jobs print strictly in order. Before the first byte of a job
goes out its counter_before (the printer's label counter) is stored too, so every retry, after
a lost link or a restart of Takt, asks the printer whether the job already came out instead of
sending it again (drivers/zpl/client.py): a job is never printed twice. A job is `done` only
when the label counter shows its labels printed.

The actor does not fail when the printer is unreachable, paused or out of paper: it keeps its
jobs (`held`, with the reason), reports them on `device.printer.<name>.job`, polls `~HS`
every status_poll_ms, reconnects, and resumes held jobs once the printer is ready again. The
client's blocking requests run in order on a thread of the actor's own (`PrinterLink`,
actors/printer_link.py), so a silent printer never keeps the actor from answering or from
stopping. What it is asked and answers is in actors/printer_messages.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import duckdb
import msgspec

from actors.base import handles
from actors.database import DatabaseActor
from actors.health import HealthState
from actors.printer_link import (
    Connected,
    LinkBroken,
    LinkOp,
    Polled,
    Prepared,
    Printed,
    PrinterLink,
    Tested,
    connect_op,
    poll_op,
    prepare_op,
    print_op,
    printer_test_op,
)
from actors.printer_messages import (
    CODE_FIELD,
    DeleteTemplate,
    GetPrinterStatus,
    GetTemplate,
    InvalidTemplate,
    ListPrintJobs,
    ListTemplates,
    PrintAccepted,
    PrinterState,
    PrinterTest,
    PrintLabel,
    PrintQueue,
    PutTemplate,
    TemplateExists,
    TemplateNotFound,
    TemplateView,
    TestPrinter,
    check_template,
)
from actors.runtime import ActorUnavailable, Reply, Runtime
from controller.printer_config import (
    BUILTIN_TEMPLATES,
    TEMPLATE_NAME_PATTERN,
    PrinterConfig,
)
from controller.timefmt import rfc3339
from drivers.zpl.client import (
    JobInterrupted,
    PartiallyPrinted,
    PrinterNotReady,
    ZplPrinterClient,
)
from drivers.zpl.codec import count_labels
from drivers.zpl.status import PrinterStatus
from drivers.zpl.template import LabelTemplate
from state.errors import DuplicateError
from state.printing import (
    JobState,
    PrintJob,
    StoredTemplate,
    count_jobs,
    delete_template,
    get_template,
    insert_job,
    insert_template,
    list_jobs,
    list_templates,
    save_template,
    unfinished_jobs,
    update_job,
)

__all__ = ["PrinterActor"]

# Reconnect attempts to an unreachable printer back off from status_poll_ms up to this.
_MAX_RECONNECT_S = 5.0


class _Tick(msgspec.Struct, frozen=True):
    """Time for the next ~HS poll, or a reconnect attempt."""


class PrinterActor(DatabaseActor):
    """One label printer: its queue of stored jobs, its ~HS poll and its link."""

    def __init__(self, runtime: Runtime, name: str, config: PrinterConfig,
                 database: duckdb.DuckDBPyConnection, *,
                 client_factory: Callable[[PrinterConfig], ZplPrinterClient] | None = None,
                 **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.config = config
        self.topic = f"device.printer.{config.name}"
        self._client_factory = client_factory or _tcp_client
        self.link: PrinterLink | None = None
        self.linked = False  # the printer answered on the current connection
        self.offline: str | None = None  # why it is unreachable, once known
        self.status: PrinterStatus | None = None
        self.status_us: int | None = None
        self.label_count: int | None = None
        self.jobs: dict[int, PrintJob] = {}  # unfinished, by id: in print order
        self._sent_at: dict[int, float] = {}  # job id -> clock.monotonic() when sent
        self._late: set[int] = set()
        self._failures = 0
        self._retry_at = 0.0
        self._timer: Any = None
        self._connecting = self._polling = self._stepping = False
        self._tests: list[Reply] = []
        self._templates: dict[str, tuple[str, LabelTemplate, int]] = {}
        self._published: tuple[Any, ...] | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def started(self) -> None:
        # The cursor is opened here rather than by DatabaseActor.started, which would report
        # UP before the printer was even tried.
        self._con = self.database.cursor()
        self.jobs = {job.id: job for job in unfinished_jobs(self.con, self.config.name)}
        if self.jobs:
            self.log.info("%s: %d unfinished job(s) to resume", self.config.name, len(self.jobs))
        self.link = PrinterLink(self.runtime, self.actor_ref, self._client_factory(self.config),
                          self.name)
        self._submit_connect()
        self._schedule()

    def stopping(self) -> None:
        self._shutdown()
        super().stopping()

    def failed(self, error: BaseException) -> None:
        self._shutdown()
        super().failed(error)

    def _shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        link, self.link = self.link, None
        if link is not None:
            link.close()
        tests, self._tests = self._tests, []
        for reply in tests:
            reply(None, ActorUnavailable(f"{self.name} stopped before the printer answered"))

    def _schedule(self) -> None:
        self._timer = self.tell_self_later(self.config.status_poll_ms / 1000, _Tick())

    def _submit(self, op: LinkOp) -> None:
        if self.link is None:
            raise ActorUnavailable(f"{self.name} has no printer link")
        self.link.submit(op)

    # --- requests -------------------------------------------------------------------------

    @handles(PrintLabel)
    def _print(self, msg: PrintLabel) -> PrintAccepted:
        name = msg.template or self.config.default_template
        template = self._template(name)[1]
        if CODE_FIELD in msg.fields:
            raise ValueError(f"give the code as `{CODE_FIELD}`, not among the fields")
        offered = {k: v for k, v in msg.offered.items() if k in template.placeholders}
        code = msg.code if msg.code is not None else offered.pop(CODE_FIELD, None)
        msg = msgspec.structs.replace(msg, code=code)
        fields = {**offered, **msg.fields}
        if CODE_FIELD in template.placeholders:
            if not msg.code:
                raise ValueError(f"template {name!r} prints a code: the request needs one")
            fields[CODE_FIELD] = msg.code
        elif msg.code is not None:
            raise ValueError(f"template {name!r} has no {{{{{CODE_FIELD}}}}} placeholder for "
                             "the code")
        zpl = template.render(fields)  # ValueError names the field
        stored = {k: v for k, v in fields.items() if k != CODE_FIELD}
        job = insert_job(self.con, printer=self.config.name, template=name, code=msg.code,
                         fields=stored, zpl=zpl, labels=count_labels(zpl),
                         requested_by=msg.by, now_us=self.clock.now_us())
        self.jobs[job.id] = job
        self._publish_job(job)
        self._pump()
        return PrintAccepted(job=job.id, printer=self.config.name, template=name,
                             labels=job.labels, state=job.state.value)

    @handles(GetPrinterStatus)
    def _state(self, _: GetPrinterStatus) -> PrinterState:
        c, s = self.config, self.status
        held = sum(1 for job in self.jobs.values() if job.state is JobState.HELD)
        connection = "connected" if self.linked else "offline" if self.offline else "connecting"
        return PrinterState(
            name=c.name, model=c.model.value, address=f"{c.host}:{c.port}",
            connection=connection, last_error=self.offline,
            ready=None if s is None else s.ready,
            problems=[] if s is None else list(s.problems),
            paper_out=None if s is None else s.paper_out,
            paused=None if s is None else s.paused,
            head_open=None if s is None else s.head_open,
            ribbon_out=None if s is None else s.ribbon_out,
            formats_in_buffer=None if s is None else s.formats_in_buffer,
            labels_remaining=None if s is None else s.labels_remaining,
            label_count=self.label_count,
            status_at=None if self.status_us is None else rfc3339(self.status_us),
            queue=PrintQueue(pending=len(self.jobs) - held, held=held),
            jobs={state.value: n for state, n in count_jobs(self.con, c.name).items()},
            malformed=self.link.client.malformed if self.link is not None else 0,
        )

    @handles(TestPrinter, deferred=True)
    def _test(self, _: TestPrinter, reply: Reply) -> None:
        self._submit(printer_test_op(reply))  # connects now if it must, whatever the backoff says
        self._tests.append(reply)

    @handles(Tested)
    def _on_tested(self, msg: Tested) -> None:
        if not any(reply is msg.reply for reply in self._tests):
            return
        self._tests = [reply for reply in self._tests if reply is not msg.reply]
        if msg.status is not None:
            self._answered(msg.status, msg.count)
        else:
            self._offline(msg.error or "no answer")
        s = msg.status
        msg.reply(PrinterTest(
            ok=s is not None, connected=self.linked, ready=None if s is None else s.ready,
            problems=[] if s is None else list(s.problems), error=msg.error,
            latency_ms=msg.latency_ms), None)

    @handles(ListPrintJobs)
    def _jobs(self, msg: ListPrintJobs) -> list[PrintJob]:
        return list_jobs(self.con, self.config.name, state=msg.state, before_id=msg.before_id,
                         limit=msg.limit)

    @handles(ListTemplates)
    def _list_templates(self, _: ListTemplates) -> list[TemplateView]:
        stored = {t.name for t in list_templates(self.con, self.config.name)}
        return [self._view(name) for name in sorted({*stored, *BUILTIN_TEMPLATES})]

    @handles(GetTemplate)
    def _get_template(self, msg: GetTemplate) -> TemplateView:
        return self._view(msg.name)

    @handles(PutTemplate)
    def _put_template(self, msg: PutTemplate) -> tuple[TemplateView, bool]:
        if not re.fullmatch(TEMPLATE_NAME_PATTERN, msg.name):
            raise InvalidTemplate(f"invalid template name {msg.name!r}: 1 to 64 letters, digits, "
                                  "'_', '.' or '-'")
        check_template(msg.body)
        now = self.clock.now_us()
        if msg.create:
            try:
                insert_template(self.con, self.config.name, msg.name, msg.body, by=msg.by,
                                now_us=now)
            except DuplicateError:
                raise TemplateExists(f"printer {self.config.name} has a template named "
                                     f"{msg.name!r} already") from None
            created = True
        else:
            _, created = save_template(self.con, self.config.name, msg.name, msg.body,
                                       by=msg.by, now_us=now)
        return self._view(msg.name), created

    @handles(DeleteTemplate)
    def _delete_template(self, msg: DeleteTemplate) -> bool:
        if not delete_template(self.con, self.config.name, msg.name):
            raise TemplateNotFound(f"printer {self.config.name} has no stored template named "
                                   f"{msg.name!r}")
        return True

    def _template(self, name: str) -> tuple[StoredTemplate | None, LabelTemplate, int]:
        """(the stored row, None for a built-in one), the compiled template, its labels."""
        stored = get_template(self.con, self.config.name, name)
        if stored is not None:
            body = stored.body
        elif name in BUILTIN_TEMPLATES:
            body = BUILTIN_TEMPLATES[name]
        else:
            raise TemplateNotFound(f"printer {self.config.name} has no template named {name!r}")
        cached = self._templates.get(name)
        if cached is None or cached[0] != body:
            cached = (body, *check_template(body))
            self._templates[name] = cached
        return stored, cached[1], cached[2]

    def _view(self, name: str) -> TemplateView:
        stored, template, labels = self._template(name)
        return TemplateView(
            name=name, body=BUILTIN_TEMPLATES[name] if stored is None else stored.body,
            placeholders=sorted(template.placeholders), labels=labels, builtin=stored is None,
            updated_at=None if stored is None else rfc3339(stored.updated_us),
            updated_by=None if stored is None else stored.updated_by)

    # --- the link and the status poll -----------------------------------------------------

    def _submit_connect(self) -> None:
        if not self._connecting:
            self._connecting = True
            self._submit(connect_op)

    def _submit_poll(self) -> None:
        if not self._polling:
            self._polling = True
            self._submit(poll_op)

    @handles(_Tick)
    def _on_tick(self, _: _Tick) -> None:
        self._timer = None
        self._schedule()
        if self.linked:
            self._submit_poll()
        elif self.clock.monotonic() >= self._retry_at:
            self._submit_connect()

    @handles(Connected)
    def _on_connected(self, msg: Connected) -> None:
        self._connecting = False
        if msg.error is None:
            self._online()
            self._submit_poll()
            return
        self._failures += 1
        poll_s = self.config.status_poll_ms / 1000
        self._retry_at = self.clock.monotonic() + max(
            poll_s, min(_MAX_RECONNECT_S, poll_s * 2 ** (self._failures - 1)))
        self._offline(msg.error)

    @handles(Polled)
    def _on_polled(self, msg: Polled) -> None:
        self._polling = False
        if msg.status is None:
            self._offline(msg.error or "no answer")
        else:
            self._answered(msg.status, msg.count)

    @handles(LinkBroken)
    def _on_link_broken(self, msg: LinkBroken) -> None:
        raise RuntimeError(f"{self.config.name}: printer link failed: {msg.error}")

    def _online(self) -> None:
        if self.linked:
            return
        self.linked, self.offline, self._failures = True, None, 0
        self.set_health(HealthState.UP)
        self._publish_status()

    def _offline(self, reason: str) -> None:
        """The printer cannot be reached: keep the reason, hold every unfinished job."""
        self.linked, self.offline = False, reason
        self.set_health(HealthState.DOWN, reason)
        self._hold_waiting(f"printer offline: {reason}", sent_too=True)
        self._publish_status()

    def _answered(self, status: PrinterStatus, count: int | None) -> None:
        """A status and label counter came back: the printer is there; resume what can go."""
        self._online()
        self.label_count = count
        self._seen(status)
        if status.ready:
            self._release_held()
        self._pump()

    def _seen(self, status: PrinterStatus) -> None:
        self.status, self.status_us = status, self.clock.now_us()
        if status.problems:
            # A warning, not DOWN: the printer answers, and jobs wait for it.
            self.set_health(HealthState.UP, f"printer reports: {', '.join(status.problems)}")
        self._publish_status()

    # --- printing -------------------------------------------------------------------------

    def _pump(self) -> None:
        """Give the head job its next step, unless one is under way."""
        if self._stepping or not self.jobs:
            return
        if not self.linked:
            if self.offline is not None:
                self._hold_waiting(f"printer offline: {self.offline}", sent_too=True)
            return
        head = next(iter(self.jobs.values()))
        self._stepping = True
        self._submit(prepare_op(head.id) if head.counter_before is None else print_op(head))

    @handles(Prepared)
    def _on_prepared(self, msg: Prepared) -> None:
        self._stepping = False
        status = msg.status
        if status is None:
            self._offline(msg.error or "no answer")
            return
        self._seen(status)
        if not status.ready:
            reason = ", ".join(status.problems)
            self._set(msg.job_id, state=JobState.HELD, reason=reason)
            self._hold_waiting(reason)
        elif msg.count is None:
            self._set(msg.job_id, reason=f"waiting: the printer still holds "
                                         f"{status.labels_remaining} label(s)")
        else:
            self._release_held()
            job = self._set(msg.job_id, counter_before=msg.count)  # stored before it is sent
            self._stepping = True
            self._submit(print_op(job))

    @handles(Printed)
    def _on_printed(self, msg: Printed) -> None:
        self._stepping = False
        if self._settle(msg):
            del self.jobs[msg.job_id]
            self._sent_at.pop(msg.job_id, None)
            self._late.discard(msg.job_id)
            self._pump()

    def _settle(self, msg: Printed) -> bool:
        """Record what a print attempt found; True once the job is finished."""
        head, exc = msg.job_id, msg.error
        if isinstance(exc, PrinterNotReady):  # nothing of the job is in the printer
            self._seen(exc.status)
            self._set(head, state=JobState.HELD, reason=", ".join(exc.conditions))
            self._hold_waiting(", ".join(exc.conditions))
            return False
        if isinstance(exc, JobInterrupted):
            self._offline(str(exc))
            # Kept with its counter_before: after the reconnect the counter tells whether it
            # came out.
            self._set(head, state=JobState.HELD, reason=f"link lost during the job: {exc}",
                      attempts=self.jobs[head].attempts + int(exc.sent))
            return False
        if isinstance(exc, PartiallyPrinted):
            self.log.warning("%s: job %d partly printed: %s", self.config.name, head, exc)
            self._set(head, state=JobState.PARTIAL, reason=str(exc))
            return True
        if isinstance(exc, ValueError):  # a stored job the client refuses: it never will print
            self._set(head, state=JobState.FAILED, reason=str(exc))
            return True
        if exc is not None or msg.result is None:
            self._offline(str(exc))
            return False
        result = msg.result
        self.label_count = result.counter_after
        self._seen(result.status)
        job = self.jobs[head]
        attempts = job.attempts + int(result.sent)
        if result.confirmed:
            self._set(head, state=JobState.DONE, reason=None, counter_after=result.counter_after,
                      attempts=attempts)
            return True
        if result.sent or job.state is JobState.SENT:
            self._sent_at.setdefault(head, self.clock.monotonic())
            self._set(head, state=JobState.SENT, reason=self._sent_reason(job, result.status),
                      attempts=attempts)
        else:
            self._set(head, reason=f"waiting: the printer holds {result.status.labels_remaining} "
                                  "label(s) not yet printed", attempts=attempts)
        return False

    def _sent_reason(self, job: PrintJob, status: PrinterStatus) -> str | None:
        waited = self.clock.monotonic() - self._sent_at[job.id]
        if waited * 1000 < self.config.confirm_timeout_ms:
            return ", ".join(status.problems) or None
        why = ", ".join(status.problems) or f"{status.labels_remaining} label(s) still to print"
        if job.id not in self._late:
            self._late.add(job.id)
            self.log.warning("%s: job %d not confirmed after %d ms (%s)", self.config.name,
                             job.id, self.config.confirm_timeout_ms, why)
            self.set_health(HealthState.UP, f"job {job.id} late: {why}")
        return f"not confirmed within {self.config.confirm_timeout_ms} ms: {why}"

    def _hold_waiting(self, reason: str, *, sent_too: bool = False) -> None:
        """Every job not yet in the printer (`sent_too`: every unfinished job) is held."""
        states = {JobState.QUEUED, JobState.HELD} | ({JobState.SENT} if sent_too else set())
        for job in list(self.jobs.values()):
            if job.state in states:
                self._set(job.id, state=JobState.HELD, reason=reason)

    def _release_held(self) -> None:
        """The printer is ready: held jobs wait for their turn again."""
        for job in list(self.jobs.values()):
            if job.state is JobState.HELD:
                self._set(job.id, state=JobState.QUEUED, reason=None)

    def _set(self, job_id: int, **changes: Any) -> PrintJob:
        """Store a change of an unfinished job (the row first); publish it if it shows."""
        current = self.jobs[job_id]
        if all(getattr(current, k) == v for k, v in changes.items()):
            return current
        new = update_job(self.con, current, now_us=self.clock.now_us(), **changes)
        self.jobs[job_id] = new
        if (new.state, new.reason) != (current.state, current.reason):
            self._publish_job(new)
        return new

    # --- publishing -----------------------------------------------------------------------

    def _publish_job(self, job: PrintJob) -> None:
        self.publish(f"{self.topic}.job", {
            "printer": self.config.name, "job": job.id, "state": job.state.value,
            "reason": job.reason, "template": job.template, "code": job.code,
            "labels": job.labels, "attempts": job.attempts}, durable=True)

    def _publish_status(self) -> None:
        s = self.status
        shown = (self.linked, self.offline, None if s is None else s.problems)
        if shown == self._published:
            return
        self._published = shown
        self.publish(f"{self.topic}.status", {
            "printer": self.config.name, "connected": self.linked, "error": self.offline,
            "ready": None if s is None else s.ready,
            "problems": [] if s is None else list(s.problems)})


def _tcp_client(config: PrinterConfig) -> ZplPrinterClient:
    return ZplPrinterClient(config.host, config.port, config.timeout_ms / 1000, name=config.name)
