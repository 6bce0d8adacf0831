"""The `takt` command."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from controller.config import ConfigError, StationConfig, embedded_demo_config_path, load_config
from controller.version import __version__

__all__ = ["main"]

DESCRIPTION = """\
Takt controls one manufacturing workstation: its devices (PLCs, scanners, printers,
cameras, torque wrenches, ...), step-by-step operator coaching, and the record of
every step. It serves a REST API under /api/v1, a live event stream on /ws, and API
docs at /docs.

  takt run                          start the demo station (simulated devices)
  takt run --config station.toml    start your station
  takt check-config station.toml    check a station file, list every mistake
"""

RUN_HELP = """\
Start the station and serve the API until Ctrl-C (or SIGTERM), which stops every
device actor in reverse start order and flushes the store.

Without --config, the embedded demo station starts with its simulated devices
(a Modbus PLC simulator on 127.0.0.1:5020 that toggles a few signals).
On the first start in a data directory, a user 'admin' is created; its password is
printed once and written to DATA_DIR/admin-password.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="takt", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"takt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="start the station and serve the API",
                         description=RUN_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--config", type=Path, metavar="FILE",
                     help="station file (TOML); default: the embedded demo station")
    run.add_argument("--data-dir", type=Path, default=Path("data"), metavar="DIR",
                     help="where the database, secrets and recordings live (default: ./data)")
    run.add_argument("--host", help="address to listen on (default: the station file's "
                                    "[server] host, 127.0.0.1)")
    run.add_argument("--port", type=int, help="port to listen on (default: the station file's "
                                              "[server] port, 8080)")
    run.add_argument("--log-level", default="INFO",
                     choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: INFO")

    check = sub.add_parser("check-config", help="check a station file and list every mistake",
                           description="Exit 0 if FILE is a valid station file; otherwise "
                                       "print every mistake as 'file:line: key: message' "
                                       "and exit 1.")
    check.add_argument("file", type=Path, metavar="FILE")
    return parser


def _load(path: Path) -> StationConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check-config":
        config = _load(args.file)
        if config is None:
            return 1
        print(f"{args.file}: ok (station {config.station.id!r}, {len(config.plcs)} PLC(s))")
        return 0

    config = _load(args.config or embedded_demo_config_path())
    if config is None:
        return 1
    # Block Ctrl-C/SIGTERM before the heavy imports: native libraries start threads of their
    # own at import (BLAS), and the kernel may hand a signal to any thread that does not
    # block it. boot.run unblocks them once the trio receiver is listening.
    signal.pthread_sigmask(signal.SIG_BLOCK, (signal.SIGINT, signal.SIGTERM))
    from controller import boot
    from controller.logfmt import configure_logging

    configure_logging(args.log_level)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if not 0 <= port <= 65535:
        print(f"takt: --port {port} is not a port number", file=sys.stderr)
        return 2
    return boot.run(config, args.data_dir, host, port)


if __name__ == "__main__":
    sys.exit(main())
