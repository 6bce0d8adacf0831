"""NUT server simulator: a threaded TCP server speaking upsd's protocol on loopback.

For the demo station and for machines without Debian's NUT: it serves one or more UPSes
with the answers and `ERR` words of upsd 2.8 for the subset Takt uses (VER, NETVER, HELP,
LIST UPS/VAR/CMD/RW, GET VAR/UPSDESC, SET VAR, INSTCMD, USERNAME, PASSWORD, LOGIN, LOGOUT).
Switches script the power: `on_battery(percent)`, `on_line()`, `set_vars()`, and
`set_stale()` for a UPS whose driver lost it (upsd's `ERR DATA-STALE`).
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
from collections.abc import Collection, Mapping, Sequence

import msgspec

from drivers.nut.codec import (
    CommandDecoder,
    Malformed,
    Request,
    encode_begin_list,
    encode_cmd,
    encode_end_list,
    encode_err,
    encode_ok,
    encode_rw,
    encode_ups,
    encode_var,
    quote,
)
from drivers.nut.status import BATTERY_CHARGE, BATTERY_RUNTIME, INPUT_VOLTAGE, UPS_STATUS
from sim.cli import serve_until_stopped
from sim.tcp_server import ThreadedTcpServer

__all__ = ["DEMO_COMMANDS", "DEMO_UPS", "DEMO_VARS", "InstantCommand", "NutUpsSimulator", "main"]

DEMO_UPS = "ups"
DEMO_VARS: dict[str, str] = {
    "device.mfr": "Takt",
    "device.model": "Demo UPS 1500",
    "device.type": "ups",
    "ups.mfr": "Takt",
    "ups.model": "Demo UPS 1500",
    UPS_STATUS: "OL",
    BATTERY_CHARGE: "100",
    "battery.charge.low": "20",
    BATTERY_RUNTIME: "3600",
    INPUT_VOLTAGE: "230.0",
    "input.voltage.nominal": "230",
    "ups.load": "23",
}
DEMO_COMMANDS = ("beeper.disable", "beeper.enable", "test.battery.start.quick")

VERSION_TEXT = "Network UPS Tools upsd 2.8.0 (Takt simulator)"
NETVER_TEXT = "1.3"
HELP_TEXT = "Commands: HELP VER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS"

_DEFAULT_LOW_PERCENT = 20.0


class InstantCommand(msgspec.Struct, frozen=True, kw_only=True):
    """An INSTCMD the simulator accepted."""

    ups: str
    command: str
    param: str | None = None


class _Ups:
    """One simulated UPS; guarded by the simulator's lock."""

    def __init__(
        self, values: Mapping[str, str], description: str, commands: Collection[str]
    ) -> None:
        self.values = dict(values)
        self.description = description
        self.commands = tuple(sorted(commands))
        self.stale = False
        # 100 % runtime, to scale battery.runtime with the charge on battery.
        self.full_runtime_s = _number(self.values.get(BATTERY_RUNTIME), 3600.0)
        self.line_voltage = self.values.get(INPUT_VOLTAGE, "230.0")


class _Session:
    """Per-connection login state, as upsd keeps it, and the connection's line decoder."""

    def __init__(self) -> None:
        self.decoder = CommandDecoder()
        self.username: str | None = None
        self.password: str | None = None
        self.logged_in: str | None = None


class NutUpsSimulator(ThreadedTcpServer[_Session]):
    """A NUT server (upsd) for UPSes held in memory; values survive stop()/start()."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        upses: Mapping[str, Mapping[str, str]] | None = None,
        *,
        descriptions: Mapping[str, str] | None = None,
        users: Mapping[str, str] | None = None,
        commands: Collection[str] = DEMO_COMMANDS,
        writable: Collection[str] = (),
    ) -> None:
        given = dict(upses) if upses is not None else {DEMO_UPS: DEMO_VARS}
        if not given:
            raise ValueError("a NUT server needs at least one UPS")
        descriptions = dict(descriptions or {})
        super().__init__(host, port, name="nut-sim")
        self._upses: dict[str, _Ups] = {}
        for name, values in given.items():
            for var, value in values.items():
                encode_var(name, var, value)  # raises ValueError for what upsd could not send
            self._upses[name] = _Ups(values, descriptions.get(name, "Unavailable"), commands)
        self._default_ups = next(iter(self._upses))
        self._users = dict(users or {})
        self._writable = frozenset(writable)
        self._requests = 0
        self._malformed = 0
        self._instcmds: list[InstantCommand] = []

    # --- observation ---------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Request lines received, since construction."""
        with self._lock:
            return self._requests

    @property
    def malformed(self) -> int:
        """Request lines that were not protocol, since construction."""
        with self._lock:
            return self._malformed

    @property
    def instcmds(self) -> list[InstantCommand]:
        """Instant commands accepted, oldest first."""
        with self._lock:
            return list(self._instcmds)

    def vars(self, ups: str | None = None) -> dict[str, str]:
        """A copy of a UPS's variables (the first UPS by default)."""
        with self._lock:
            return dict(self._ups(ups).values)

    # --- switches ------------------------------------------------------------------------

    def set_vars(self, values: Mapping[str, str], *, ups: str | None = None) -> None:
        """Change variables as the UPS would; an empty value removes one (as dummy-ups)."""
        with self._lock:
            target = self._ups(ups)
            name = ups or self._default_ups
            for var, value in values.items():
                encode_var(name, var, value)  # raises ValueError before anything changes
            for var, value in values.items():
                if value:
                    target.values[var] = value
                else:
                    target.values.pop(var, None)

    def on_battery(self, percent: float, *, ups: str | None = None) -> None:
        """Utility power lost: OB DISCHRG at percent charge, with LB at or below the low mark."""
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be within 0..100, got {percent}")
        with self._lock:
            target = self._ups(ups)
            low = _number(target.values.get("battery.charge.low"), _DEFAULT_LOW_PERCENT)
            status = "OB DISCHRG LB" if percent <= low else "OB DISCHRG"
            values = {UPS_STATUS: status, **self._battery(target, percent)}
            if INPUT_VOLTAGE in target.values:
                values[INPUT_VOLTAGE] = "0.0"
            self.set_vars(values, ups=ups)

    def on_line(self, *, ups: str | None = None) -> None:
        """Utility power back: OL, and CHRG while the battery is not full."""
        with self._lock:
            target = self._ups(ups)
            percent = _number(target.values.get(BATTERY_CHARGE), 100.0)
            values = {UPS_STATUS: "OL" if percent >= 100 else "OL CHRG"}
            if INPUT_VOLTAGE in target.values:
                values[INPUT_VOLTAGE] = target.line_voltage
            self.set_vars(values, ups=ups)

    def set_stale(self, stale: bool, *, ups: str | None = None) -> None:
        """While stale, variable requests for the UPS answer `ERR DATA-STALE`."""
        with self._lock:
            self._ups(ups).stale = stale

    def _ups(self, ups: str | None) -> _Ups:
        name = self._default_ups if ups is None else ups
        try:
            return self._upses[name]
        except KeyError:
            raise KeyError(f"no UPS named {name!r}") from None

    def _battery(self, target: _Ups, percent: float) -> dict[str, str]:
        values = {BATTERY_CHARGE: f"{percent:g}"}
        if BATTERY_RUNTIME in target.values:
            values[BATTERY_RUNTIME] = str(round(target.full_runtime_s * percent / 100))
        return values

    # --- connections ---------------------------------------------------------------------

    def _on_connect(self, sock: socket.socket) -> _Session:
        return _Session()

    def _on_data(self, sock: socket.socket, state: _Session, data: bytes) -> bool:
        for request in state.decoder.feed(data):
            # Unlike a broadcast, a send that fails or stalls ends this connection (OSError).
            sock.sendall(self._answer(state, request))
            if isinstance(request, Request) and request.verb == "LOGOUT":
                return False
        return True

    # --- protocol ------------------------------------------------------------------------

    def _answer(self, session: _Session, request: Request | Malformed) -> bytes:
        with self._lock:
            self._requests += 1
            if isinstance(request, Malformed):
                self._malformed += 1
                return encode_err("INVALID-ARGUMENT")
            verb, args = request.verb, request.args
            if verb == "VER":
                return _text(VERSION_TEXT)
            if verb == "NETVER":
                return _text(NETVER_TEXT)
            if verb == "HELP":
                return _text(HELP_TEXT)
            if verb == "LIST":
                return self._list(args)
            if verb == "GET":
                return self._get(args)
            if verb == "SET":
                return self._set(session, args)
            if verb == "INSTCMD":
                return self._instcmd(session, args)
            if verb == "USERNAME":
                return self._credential(session, "username", args)
            if verb == "PASSWORD":
                return self._credential(session, "password", args)
            if verb == "LOGIN":
                return self._login(session, args)
            if verb == "LOGOUT":
                return encode_ok("Goodbye")
            if verb == "STARTTLS":
                return encode_err("FEATURE-NOT-CONFIGURED")
            return encode_err("UNKNOWN-COMMAND")

    def _list(self, args: tuple[str, ...]) -> bytes:
        sub = args[0].upper() if args else ""
        if sub == "UPS" and len(args) == 1:
            lines = [encode_ups(name, ups.description) for name, ups in self._upses.items()]
            return encode_begin_list("UPS") + b"".join(lines) + encode_end_list("UPS")
        if sub not in ("VAR", "RW", "CMD") or len(args) != 2:
            return encode_err("INVALID-ARGUMENT")
        name = args[1]
        ups = self._upses.get(name)
        if ups is None:
            return encode_err("UNKNOWN-UPS")
        if sub == "CMD":
            lines = [encode_cmd(name, command) for command in ups.commands]
        else:
            if ups.stale:
                return encode_err("DATA-STALE")
            keys = sorted(ups.values)
            if sub == "RW":
                keys = [key for key in keys if key in self._writable]
            encode = encode_rw if sub == "RW" else encode_var
            lines = [encode(name, key, ups.values[key]) for key in keys]
        return encode_begin_list(sub, name) + b"".join(lines) + encode_end_list(sub, name)

    def _get(self, args: tuple[str, ...]) -> bytes:
        sub = args[0].upper() if args else ""
        if sub == "UPSDESC" and len(args) == 2:
            ups = self._upses.get(args[1])
            if ups is None:
                return encode_err("UNKNOWN-UPS")
            return _text(f"UPSDESC {args[1]} {quote(ups.description)}")
        if sub != "VAR" or len(args) != 3:
            return encode_err("INVALID-ARGUMENT")
        name, var = args[1], args[2]
        ups = self._upses.get(name)
        if ups is None:
            return encode_err("UNKNOWN-UPS")
        if ups.stale:
            return encode_err("DATA-STALE")
        if var not in ups.values:
            return encode_err("VAR-NOT-SUPPORTED")
        return encode_var(name, var, ups.values[var])

    def _set(self, session: _Session, args: tuple[str, ...]) -> bytes:
        if not args or args[0].upper() != "VAR" or len(args) != 4:
            return encode_err("INVALID-ARGUMENT")
        refused = self._require_credentials(session)
        if refused is not None:
            return refused
        name, var, value = args[1:]
        ups = self._upses.get(name)
        if ups is None:
            return encode_err("UNKNOWN-UPS")
        if var not in ups.values:
            return encode_err("VAR-NOT-SUPPORTED")
        if var not in self._writable:
            return encode_err("READONLY")
        if not self._authenticated(session):
            return encode_err("ACCESS-DENIED")
        try:
            encode_var(name, var, value)
        except ValueError:
            return encode_err("TOO-LONG")
        ups.values[var] = value
        return encode_ok()

    def _instcmd(self, session: _Session, args: tuple[str, ...]) -> bytes:
        if len(args) not in (2, 3):
            return encode_err("INVALID-ARGUMENT")
        refused = self._require_credentials(session)
        if refused is not None:
            return refused
        name, command = args[0], args[1]
        ups = self._upses.get(name)
        if ups is None:
            return encode_err("UNKNOWN-UPS")
        if command not in ups.commands:
            return encode_err("CMD-NOT-SUPPORTED")
        if not self._authenticated(session):
            return encode_err("ACCESS-DENIED")
        param = args[2] if len(args) == 3 else None
        self._instcmds.append(InstantCommand(ups=name, command=command, param=param))
        return encode_ok()

    def _credential(self, session: _Session, which: str, args: tuple[str, ...]) -> bytes:
        if len(args) != 1:
            return encode_err("INVALID-ARGUMENT")
        if getattr(session, which) is not None:
            return encode_err(f"ALREADY-SET-{which.upper()}")
        setattr(session, which, args[0])
        return encode_ok()

    def _login(self, session: _Session, args: tuple[str, ...]) -> bytes:
        if len(args) != 1:
            return encode_err("INVALID-ARGUMENT")
        refused = self._require_credentials(session)
        if refused is not None:
            return refused
        if args[0] not in self._upses:
            return encode_err("UNKNOWN-UPS")
        if not self._authenticated(session):
            return encode_err("ACCESS-DENIED")
        if session.logged_in is not None:
            return encode_err("ALREADY-LOGGED-IN")
        session.logged_in = args[0]
        return encode_ok()

    def _require_credentials(self, session: _Session) -> bytes | None:
        # upsd asks for the missing half first and checks the pair only when it matters.
        if session.username is None:
            return encode_err("USERNAME-REQUIRED")
        if session.password is None:
            return encode_err("PASSWORD-REQUIRED")
        return None

    def _authenticated(self, session: _Session) -> bool:
        expected = self._users.get(session.username or "")
        return expected is not None and expected == session.password


def _text(line: str) -> bytes:
    return line.encode("utf-8") + b"\n"


def _number(text: str | None, default: float) -> float:
    try:
        value = float(text) if text is not None else default
    except ValueError:
        return default
    return value if math.isfinite(value) else default


def _parse_user(text: str) -> tuple[str, str]:
    name, colon, password = text.partition(":")
    if not colon or not name or not password:
        raise argparse.ArgumentTypeError(f"expected NAME:PASSWORD, got {text!r}")
    return name, password


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process; prints `READY <port>` once listening."""
    parser = argparse.ArgumentParser(prog="python -m sim.nut_ups", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ups", default=DEMO_UPS, help="name of the simulated UPS")
    parser.add_argument(
        "--user",
        type=_parse_user,
        action="append",
        default=[],
        metavar="NAME:PASSWORD",
        help="a user allowed SET VAR and INSTCMD",
    )
    args = parser.parse_args(argv)
    sim = NutUpsSimulator(
        args.host,
        args.port,
        {args.ups: DEMO_VARS},
        descriptions={args.ups: "Takt demo UPS"},
        users=dict(args.user),
    )
    return serve_until_stopped(sim.start, sim.stop)


if __name__ == "__main__":
    sys.exit(main())
