"""Structured log lines (logfmt): every line carries the actor that wrote it."""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["LogfmtFormatter", "configure_logging"]


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n\t'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"ts={ts}.{int(record.msecs):03d}Z",
            f"level={record.levelname.lower()}",
            f"actor={_quote(getattr(record, 'actor', '-'))}",
            f"logger={record.name}",
            f"msg={_quote(record.getMessage())}",
        ]
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # pykka logs every actor failure with a traceback; Takt reports failures itself
    # (once per state change), so pykka's own lines would only repeat them.
    logging.getLogger("pykka").setLevel(logging.CRITICAL)
    for noisy in ("pymodbus", "hypercorn.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
