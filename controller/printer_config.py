"""The printer part of the station config (seed 002 "Printers"): up to 10 label printers.

Each printer prints a template (stored per printer, see docs/zpl-templates.md) and confirms
every job by the printer's own label counter, so two printers entries must never point at
one device: each would take the other's labels for its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from controller.config_check import Problems, array_rule, duplicate_names, table_rule
from controller.config_lines import join_key

__all__ = [
    "BATCH_TEMPLATE",
    "BUILTIN_TEMPLATE",
    "BUILTIN_TEMPLATES",
    "DEFAULT_TEMPLATE",
    "MAX_PRINTERS",
    "TEMPLATE_NAME_PATTERN",
    "PrinterConfig",
    "PrinterModel",
    "printer_schema",
]

MAX_PRINTERS = 10
TEMPLATE_NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}(?!\n)$"
DEFAULT_TEMPLATE = "default"
BUILTIN_TEMPLATE = (
    "^XA\n"
    "^FO30,30^BXN,6,200,,,,_^FD{{code|gs1}}^FS\n"
    "^XZ\n"
)
"""What `default` prints until a template of that name is stored: the code as a GS1
DataMatrix."""

BATCH_TEMPLATE = "batch"
BUILTIN_TEMPLATES = {
    DEFAULT_TEMPLATE: BUILTIN_TEMPLATE,
    # A package, box or batch label (traceability): what it is, how full, and its identifier
    # as Code 128, the barcode a BOX scanner or the next station reads back.
    BATCH_TEMPLATE: (
        "^XA\n"
        "^CF0,36\n"
        "^FO30,30^FD{{kind}} {{identifier}}^FS\n"
        "^FO30,80^FD{{count}} items {{gtin}}^FS\n"
        "^FO30,130^BY2^BCN,100,Y,N,N^FD{{identifier}}^FS\n"
        "^XZ\n"
    ),
}
"""Templates every printer has until one of the same name is stored."""


class PrinterModel(StrEnum):
    ZEBRA_ZPL = "ZEBRA_ZPL"


class PrinterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]
    model: PrinterModel = PrinterModel.ZEBRA_ZPL
    enabled: bool = True
    host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 9100  # raw TCP printing on Zebra printers
    timeout_ms: Annotated[int, Meta(ge=50, le=30_000)] = 2000
    """How long one request (connect, ~HS, the label counter) may take."""
    confirm_timeout_ms: Annotated[int, Meta(ge=100, le=600_000)] = 30_000
    """How long a sent job may take to come out before it is reported as late."""
    status_poll_ms: Annotated[int, Meta(ge=50, le=60_000)] = 1000
    """How often ~HS is asked: held jobs resume, and a lost printer reconnects, on a poll."""
    default_template: Annotated[str, Meta(pattern=TEMPLATE_NAME_PATTERN)] = DEFAULT_TEMPLATE
    """The template a print request gets when it names none."""


@table_rule(PrinterConfig, "confirm_timeout_ms", "status_poll_ms")
def _confirmation_outlasts_a_poll(key: str, p: PrinterConfig) -> Problems:
    if p.confirm_timeout_ms < p.status_poll_ms:
        yield (join_key(key, "confirm_timeout_ms"),
               f"must be at least status_poll_ms ({p.status_poll_ms}): a job is checked for "
               "its labels on each status poll")


@array_rule(PrinterConfig, "name", "host", "port")
def _distinct_printers(items: Sequence[tuple[str, PrinterConfig]]) -> Problems:
    # An item that is not a table at all reaches array rules as None; it has its own error.
    items = [(key, p) for key, p in items if p is not None]
    yield from duplicate_names(items, "printer")
    first: dict[tuple[str, int], str] = {}
    for key, p in items:
        address = (p.host.lower(), p.port)
        if address in first:
            # Jobs are confirmed by the printer's label counter: a second entry would count
            # the first one's labels as its own, and skip or repeat jobs.
            yield (join_key(key, "port"),
                   f"{p.host}:{p.port} is already the printer at {first[address]}")
        else:
            first[address] = key
    if len(items) > MAX_PRINTERS:
        yield items[MAX_PRINTERS][0], f"at most {MAX_PRINTERS} printers per station"


_TEMPLATE_RULES = (
    "A template is ZPL II text with one or more ^XA...^XZ label formats.",
    "{{name}} inserts a field (letters, digits and _); {{name|gs1}} inserts a GS1 element "
    "string as GS1 DataMatrix data.",
    "Placeholders stand only in ^FD or ^FV data inside ^XA...^XZ, never in other commands "
    "or SGD lines.",
    "{{name|gs1}} needs a ^BX field of quality 200 with an explicit escape character "
    "(^BXN,6,200,,,,_).",
    "A ^CI other than 28 must not be in effect at a placeholder (rendering adds ^CI28).",
    "Field data is always escaped (^FH): a value can never become a command; a value over "
    "3072 bytes, or with '>' in a ^BC field, is refused.",
    "A print request fills {{code}} / {{code|gs1}} with its code, every other placeholder "
    "from params; params.template chooses the template (default_template otherwise).",
)


def printer_schema() -> dict[str, Any]:
    """Per model: the config fields (JSON Schema) and the template rules."""
    config_schema = msgspec.json.schema(PrinterConfig)
    return {
        "models": {
            PrinterModel.ZEBRA_ZPL.value: {
                "transport": "TCP",
                "default_port": 9100,
                "description": "Zebra ZPL II over raw TCP; jobs confirmed by the label counter "
                               "(odometer.total_label_count), status by ~HS",
                "config": config_schema,
                "max_printers": MAX_PRINTERS,
                "template": {
                    "name_pattern": TEMPLATE_NAME_PATTERN,
                    "placeholder": "{{name}}",
                    "gs1_placeholder": "{{name|gs1}}",
                    "code_field": "code",
                    "template_param": "template",
                    "rules": list(_TEMPLATE_RULES),
                    "builtin": {DEFAULT_TEMPLATE: BUILTIN_TEMPLATE},
                },
            },
        },
    }
