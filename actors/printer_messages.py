"""What the printer actor is asked and answers (actors/printer.py): its request messages, the
answers and refusals the facade and other actors see, the limits on templates and jobs, and
check_template, which compiles and checks a template body."""

from __future__ import annotations

import msgspec

from drivers.zpl.codec import count_labels
from drivers.zpl.template import LabelTemplate
from state.printing import JobState

__all__ = [
    "CODE_FIELD",
    "MAX_LABELS_PER_JOB",
    "MAX_TEMPLATE_BYTES",
    "DeleteTemplate",
    "GetPrinterStatus",
    "GetTemplate",
    "InvalidTemplate",
    "ListPrintJobs",
    "ListTemplates",
    "PrintAccepted",
    "PrintLabel",
    "PrintQueue",
    "PrinterState",
    "PrinterTest",
    "PutTemplate",
    "TemplateExists",
    "TemplateNotFound",
    "TemplateView",
    "TestPrinter",
    "check_template",
]

CODE_FIELD = "code"
"""The placeholder a print request's code fills ({{code}} or {{code|gs1}})."""
MAX_TEMPLATE_BYTES = 64 * 1024
MAX_LABELS_PER_JOB = 1000


# ---- messages ----------------------------------------------------------------------------------


class PrintLabel(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Render a template and queue the job; answered with PrintAccepted once it is stored."""

    code: str | None = None
    fields: dict[str, str] = {}
    template: str | None = None  # None: the printer's default_template
    by: str | None = None
    # Values a template may use (`code` among them); those it does not use are left out. For
    # callers that print whatever template an engineer configured (traceability labels).
    offered: dict[str, str] = {}


class PrintAccepted(msgspec.Struct, frozen=True, kw_only=True):
    job: int
    printer: str
    template: str
    labels: int
    state: str


class GetPrinterStatus(msgspec.Struct, frozen=True, tag=True):
    pass


class TestPrinter(msgspec.Struct, frozen=True, tag=True):
    """Ask the printer for ~HS now (reconnecting first if it is offline); prints nothing."""


class ListPrintJobs(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    state: JobState | None = None
    before_id: int | None = None
    limit: int = 100


class ListTemplates(msgspec.Struct, frozen=True, tag=True):
    pass


class GetTemplate(msgspec.Struct, frozen=True, tag=True):
    name: str


class PutTemplate(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Store a template, checked first; `create` refuses to replace one (TemplateExists)."""

    name: str
    body: str
    by: str | None = None
    create: bool = False


class DeleteTemplate(msgspec.Struct, frozen=True, tag=True):
    name: str


class TemplateNotFound(LookupError):
    """The printer has no template of that name."""


class TemplateExists(Exception):
    """A template of that name is stored already."""


class InvalidTemplate(ValueError):
    """A template LabelTemplate refuses, or one that prints no label or too many."""


class TemplateView(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    body: str
    placeholders: list[str]
    labels: int
    builtin: bool
    updated_at: str | None = None
    updated_by: str | None = None


class PrintQueue(msgspec.Struct, frozen=True, kw_only=True):
    pending: int
    """Jobs waiting their turn or sent and not yet confirmed."""
    held: int
    """Jobs kept because the printer cannot print now (reason on each job)."""


class PrinterState(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    model: str
    address: str
    connection: str  # connected | offline
    last_error: str | None
    ready: bool | None  # None until the printer has answered ~HS
    problems: list[str]
    paper_out: bool | None
    paused: bool | None
    head_open: bool | None
    ribbon_out: bool | None
    formats_in_buffer: int | None
    labels_remaining: int | None
    label_count: int | None  # the printer's lifetime counter, as last read
    status_at: str | None  # when ~HS last answered
    queue: PrintQueue
    jobs: dict[str, int]  # stored jobs of this printer by state
    malformed: int


class PrinterTest(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    connected: bool
    ready: bool | None
    problems: list[str]
    error: str | None
    latency_ms: float


# ---- templates ---------------------------------------------------------------------------------


def check_template(body: str) -> tuple[LabelTemplate, int]:
    """The compiled template and how many labels it prints; InvalidTemplate says why not."""
    size = len(body.encode("utf-8", "replace"))
    if size > MAX_TEMPLATE_BYTES:
        raise InvalidTemplate(f"the template has {size} bytes; at most {MAX_TEMPLATE_BYTES}")
    try:
        template = LabelTemplate(body)
    except ValueError as exc:
        raise InvalidTemplate(str(exc)) from None
    # Placeholders stand only in field data, so the template text counts as its renderings do.
    labels = count_labels(body.encode("utf-8"))
    if labels < 1:
        raise InvalidTemplate("the template prints no label: it needs a ^XA...^XZ format")
    if labels > MAX_LABELS_PER_JOB:
        raise InvalidTemplate(f"the template prints {labels} labels; at most "
                              f"{MAX_LABELS_PER_JOB} per job")
    return template, labels
