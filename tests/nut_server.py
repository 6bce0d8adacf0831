"""The real Network UPS Tools server for tests: Debian's upsd with the dummy-ups driver.

`running_nut()` writes a private NUT configuration, starts `dummy-ups` and `upsd` from
/lib/nut (the /usr/sbin wrappers insist on /etc/nut/nut.conf) with NUT_CONFPATH and
NUT_STATEPATH pointing at it, and waits until upsd serves the initial variables.

How state changes reach upsd: the UPS's data file is `<ups>.dev`, which dummy-ups (NUT 2.8)
runs in `dummy-once` mode: it reads the file once, then re-reads it whenever the file's
modification time changes, which it checks once per driver cycle (1-2 s with the
`pollinterval = 1` written here). It compares whole seconds, so two writes within one second
would look like one; `set_vars` therefore moves the file's mtime forward by at least a second
on every write (renaming a complete file into place, so no half-written file is read).
Clients see a change about 1 s later (measured 0.8-1.0 s).

The file is parsed by NUT's parseconf, which cannot carry `"`, `\\` or `#` in a value (a `#`
ends the line even inside quotes); `set_vars` refuses those. An empty value removes the
variable (dummy-ups' rule). Start-up takes about 3 s: dummy-ups serves its first data only
after two of its cycles.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from drivers.errors import DriverError
from drivers.nut.client import NutClient, NutError

__all__ = [
    "DUMMY_UPS",
    "PASSWORD",
    "UPSD",
    "USERNAME",
    "NutServer",
    "running_nut",
    "starting_nut",
]

NUT_BIN = Path("/lib/nut")
UPSD = NUT_BIN / "upsd"
DUMMY_UPS = NUT_BIN / "dummy-ups"
USERNAME = "takt"
PASSWORD = "takt-test-password"
"""Credentials of the one upsd user, allowed SET and every instant command."""

DEFAULT_INITIAL = {"ups.status": "OL", "battery.charge": "100", "battery.runtime": "3600"}

_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0
_POLL_S = 0.02
_PORT_TRIES = 3
_UNSAFE_IN_DEV_FILE = frozenset('"\\#\r\n\x00')


class NutServer:
    """A running upsd + dummy-ups pair serving one UPS on 127.0.0.1:port."""

    def __init__(self, conf_dir: Path, state_dir: Path, ups: str, values: dict[str, str]) -> None:
        self.conf_dir = conf_dir
        self.state_dir = state_dir
        self.ups = ups
        self.port = 0
        self.username = USERNAME
        self.password = PASSWORD
        self._values = {name: value for name, value in values.items() if value}
        self._mtime_s = 0
        self._driver: subprocess.Popen[bytes] | None = None
        self._upsd: subprocess.Popen[bytes] | None = None

    @property
    def dev_file(self) -> Path:
        """The data file dummy-ups watches."""
        return self.conf_dir / f"{self.ups}.dev"

    def values(self) -> dict[str, str]:
        """The variables last written to the data file."""
        return dict(self._values)

    def set_vars(self, values: Mapping[str, str]) -> None:
        """Change variables as the UPS would; clients see them within about two seconds."""
        merged = {**self._values, **values}
        self._write_dev(merged)
        self._values = {name: value for name, value in merged.items() if value}

    def wait_vars(self, values: Mapping[str, str], timeout_s: float = 10.0) -> None:
        """Block until upsd serves values (polling it); AssertionError after timeout_s."""
        deadline = time.monotonic() + timeout_s
        seen: dict[str, str] | str = "no answer yet"
        client = NutClient("127.0.0.1", self.port, timeout_s=2.0)
        try:
            while True:
                self._check_alive()
                try:
                    client.connect()
                    seen = client.list_vars(self.ups)
                except NutError as exc:
                    seen = str(exc)  # DATA-STALE and the like while the driver starts
                except DriverError as exc:
                    seen = str(exc)
                    client.close()
                else:
                    if all(seen.get(name) == value for name, value in values.items()):
                        return
                if time.monotonic() >= deadline:
                    raise AssertionError(
                        f"upsd did not serve {dict(values)} within {timeout_s} s: {seen}"
                    )
                time.sleep(_POLL_S)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop upsd and the driver; safe to call twice."""
        for process in (self._upsd, self._driver):
            if process is not None and process.poll() is None:
                process.terminate()
        for process in (self._upsd, self._driver):
            if process is None:
                continue
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(_STOP_TIMEOUT_S)
        self._upsd = self._driver = None

    # --- start-up ------------------------------------------------------------------------

    def start(self) -> None:
        """Write the configuration and spawn dummy-ups and upsd; does not wait for them."""
        self._write_conf()
        self._write_dev(self._values)
        self.port = _free_port()
        self._write_upsd_conf()
        # No ordering needed: upsd retries the driver's socket until it appears.
        self._driver = self._spawn(DUMMY_UPS, "-a", self.ups)
        self._upsd = self._spawn(UPSD)

    def wait_ready(self, timeout_s: float = _START_TIMEOUT_S) -> None:
        """Block until upsd serves the initial variables (about 3 s after start())."""
        for attempt in range(_PORT_TRIES):
            try:
                self.wait_vars(self._values, timeout_s)
                return
            except RuntimeError:
                upsd, driver = self._upsd, self._driver
                if upsd is None or driver is None or driver.poll() is not None:
                    raise
                if upsd.poll() is None or attempt == _PORT_TRIES - 1:
                    raise
                # upsd lost its port to another process between probing and binding.
                self.port = _free_port()
                self._write_upsd_conf()
                self._upsd = self._spawn(UPSD)

    def _spawn(self, program: Path, *args: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "NUT_CONFPATH": str(self.conf_dir),
            "NUT_STATEPATH": str(self.state_dir),
            "NUT_ALTPIDPATH": str(self.state_dir),
        }
        # -F: stay in the foreground so we own the process. -u: started as root they would
        # switch to the `nut` user, which cannot enter our private folders.
        user = pwd.getpwuid(os.geteuid()).pw_name
        log = (self.conf_dir / f"{program.name}.log").open("ab")
        with log:
            return subprocess.Popen(
                [str(program), "-F", "-u", user, *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _check_alive(self) -> None:
        for name, process in (("dummy-ups", self._driver), ("upsd", self._upsd)):
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}\n{self._logs()}")

    def _logs(self) -> str:
        parts = []
        for log in sorted(self.conf_dir.glob("*.log")):
            text = log.read_text(errors="replace")[-2000:]
            parts.append(f"--- {log.name}\n{text}")
        return "\n".join(parts)

    # --- files ---------------------------------------------------------------------------

    def _write_conf(self) -> None:
        _write_private(
            self.conf_dir / "ups.conf",
            f"[{self.ups}]\n\tdriver = dummy-ups\n\tport = {self.dev_file}\n"
            f'\tdesc = "Takt test UPS"\n\tpollinterval = 1\n',
        )
        _write_private(
            self.conf_dir / "upsd.users",
            f"[{USERNAME}]\n\tpassword = {PASSWORD}\n\tactions = SET\n\tinstcmds = ALL\n",
        )

    def _write_upsd_conf(self) -> None:
        _write_private(self.conf_dir / "upsd.conf", f"LISTEN 127.0.0.1 {self.port}\n")

    def _write_dev(self, values: Mapping[str, str]) -> None:
        lines = []
        for name, value in values.items():
            bad = _UNSAFE_IN_DEV_FILE.intersection(name + value)
            if bad or not name or " " in name or ":" in name:
                raise ValueError(f"dummy-ups cannot carry {name}={value!r} in its data file")
            lines.append(f'{name}: "{value}"\n')
        # Whole seconds, always forward: dummy-ups only re-reads when the second changes.
        self._mtime_s = max(int(time.time()), self._mtime_s + 1)
        temporary = self.dev_file.with_suffix(".tmp")
        temporary.write_text("".join(lines))
        os.utime(temporary, (self._mtime_s, self._mtime_s))
        # Renamed into place so dummy-ups never reads half a file.
        temporary.replace(self.dev_file)


@contextmanager
def starting_nut(
    tmp_path: Path, ups: str = "ups1", initial: Mapping[str, str] | None = None
) -> Iterator[NutServer]:
    """Like running_nut, without waiting: start several, then wait_ready() on each."""
    missing = [str(path) for path in (UPSD, DUMMY_UPS) if not path.exists()]
    if missing:
        raise RuntimeError(
            f"NUT server binaries missing ({', '.join(missing)}): run scripts/system-deps.sh"
        )
    conf_dir = tmp_path / f"nut-{ups}"
    conf_dir.mkdir(mode=0o700)
    # The driver's Unix socket lives here; pytest's tmp paths can exceed the 108-byte limit.
    state_dir = Path(tempfile.mkdtemp(prefix="nut-"))
    values = dict(DEFAULT_INITIAL if initial is None else initial)
    server = NutServer(conf_dir, state_dir, ups, values)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(state_dir, ignore_errors=True)


@contextmanager
def running_nut(
    tmp_path: Path, ups: str = "ups1", initial: Mapping[str, str] | None = None
) -> Iterator[NutServer]:
    """Run upsd + dummy-ups serving ups with initial variables, ready; stopped on exit."""
    with starting_nut(tmp_path, ups, initial) as server:
        server.wait_ready()
        yield server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _write_private(path: Path, text: str) -> None:
    # upsd warns about world-readable configuration (it holds passwords).
    path.write_text(text)
    path.chmod(0o600)
