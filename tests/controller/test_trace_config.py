"""The [traceability] section of a station config: what a valid one gives, and every mistake
reported at its key and line (industry, the eject signal, label printers, simulator ports)."""

from __future__ import annotations

import textwrap
import tomllib

import pytest

from controller.config import ConfigError, StationConfig, check_station, parse_config
from controller.config_check import ConfigIssue
from controller.trace_config import EjectConfig, LabelRule, TraceabilityConfig

DEVICES = """\
[station]
id = "line-7"
name = "Line 7"

[[plcs]]
name = "line1"

  [[plcs.bindings]]
  name = "part_present"
  kind = "coil"
  address = 0
  type = "bool"

  [[plcs.bindings]]
  name = "reject"
  kind = "coil"
  address = 10
  type = "bool"
  direction = "out"

  [[plcs.bindings]]
  name = "counter"
  kind = "holding_register"
  address = 0
  type = "uint16"
  direction = "out"

[[plcs]]
name = "spare"
enabled = false

[[printers]]
name = "labels"

[[printers]]
name = "old"
port = 9102
enabled = false
"""


def parse(section: str) -> StationConfig:
    return parse_config(DEVICES + textwrap.dedent(section), "line7.toml")


def issues(section: str) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as caught:
        parse(section)
    return caught.value.issues


def line_of(section: str, needle: str) -> int:
    """The 1-based line of the file where needle is written."""
    lines = (DEVICES + textwrap.dedent(section)).splitlines()
    return next(i for i, line in enumerate(lines, 1) if needle in line)


def test_a_station_without_the_section_gets_a_generic_line_that_ejects_and_prints_nothing(
        ) -> None:
    trace = parse("").traceability

    assert trace == TraceabilityConfig()
    assert (trace.industry, trace.eject, trace.auto_batch, trace.recent) == (
        "generic", None, None, 500)
    assert [trace.labels.for_kind(k) for k in ("batch", "package", "box")] == [None] * 3


def test_a_full_section_parses() -> None:
    trace = parse("""
        [traceability]
        industry = "milk"
        line_id = "line-7"
        party = "PARTY-2026-01"
        auto_batch = 24
        recent = 100

        [traceability.eject]
        plc = "line1"
        signal = "reject"

        [traceability.labels.batch]
        printer = "labels"
        template = "batch"

        [traceability.labels.box]
        printer = "labels"
    """).traceability

    assert (trace.industry, trace.line_id, trace.party, trace.auto_batch, trace.recent) == (
        "milk", "line-7", "PARTY-2026-01", 24, 100)
    assert trace.eject == EjectConfig(plc="line1", signal="reject")
    assert trace.labels.for_kind("batch") == LabelRule(printer="labels", template="batch")
    assert trace.labels.for_kind("box") == LabelRule(printer="labels", template="batch")
    assert trace.labels.for_kind("package") is None


def test_an_unknown_industry_is_reported_with_the_known_ones() -> None:
    section = '[traceability]\nindustry = "cheese"\n'

    (issue,) = issues(section)

    assert (issue.key, issue.line) == ("traceability.industry", line_of(section, "cheese"))
    assert "unknown industry 'cheese'" in issue.message
    assert "dairy" in issue.message and "water" in issue.message


@pytest.mark.parametrize(("eject", "key", "message"), [
    ('plc = "press"\nsignal = "reject"', "traceability.eject.plc", "no PLC named 'press'"),
    ('plc = "spare"\nsignal = "reject"', "traceability.eject.plc",
     "a disabled PLC named 'spare'"),
    ('plc = "line1"\nsignal = "part_present"', "traceability.eject.signal",
     "line1.part_present must be a bool signal with direction 'out'"),
    ('plc = "line1"\nsignal = "counter"', "traceability.eject.signal",
     "line1.counter must be a bool signal with direction 'out'"),
    ('plc = "line1"\nsignal = "pusher"', "traceability.eject.signal",
     "line1.pusher must be a bool signal with direction 'out'"),
])
def test_an_eject_the_plc_cannot_take_is_reported_at_its_key(
        eject: str, key: str, message: str) -> None:
    section = f"[traceability.eject]\n{eject}\n"

    (issue,) = issues(section)

    assert (issue.key, issue.message) == (key, message)
    assert issue.line == line_of(section, key.rsplit(".", 1)[1] + " =")


@pytest.mark.parametrize(("printer", "message"), [
    ("zebra", "no printer named 'zebra'"),
    ("old", "a disabled printer named 'old'"),
])
def test_a_label_for_a_printer_that_is_not_there_is_reported_at_its_key(
        printer: str, message: str) -> None:
    section = f"""
        [traceability.labels.batch]
        printer = "labels"

        [traceability.labels.box]
        printer = "{printer}"
    """

    (issue,) = issues(section)

    assert (issue.key, issue.message) == ("traceability.labels.box.printer", message)
    assert issue.line == line_of(section, f'printer = "{printer}"')


@pytest.mark.parametrize(("section", "key"), [
    ("[traceability]\nauto_batch = 0\n", "traceability.auto_batch"),
    ("[traceability]\nrecent = 20000\n", "traceability.recent"),
    ("[traceability]\nline = 7\n", "traceability.line"),
    ('[traceability.eject]\nplc = "Line 1"\nsignal = "reject"\n', "traceability.eject.plc"),
    ('[traceability.labels.pallet]\nprinter = "labels"\n', "traceability.labels.pallet"),
    ('[traceability.labels.box]\ntemplate = "batch"\n', "traceability.labels.box.printer"),
])
def test_a_malformed_section_is_reported_at_its_key(section: str, key: str) -> None:
    (issue,) = issues(section)

    assert issue.key == key and issue.line > 0


def test_every_mistake_in_the_section_is_reported_at_once() -> None:
    found = issues("""
        [traceability]
        industry = "cheese"

        [traceability.eject]
        plc = "press"
        signal = "reject"

        [traceability.labels.package]
        printer = "zebra"
    """)

    assert sorted(i.key for i in found) == [
        "traceability.eject.plc", "traceability.industry", "traceability.labels.package.printer"]


def test_overrides_given_as_data_are_checked_the_same_way() -> None:
    raw = tomllib.loads(DEVICES)
    raw["traceability"] = {"eject": {"plc": "line1", "signal": "part_present"}}

    with pytest.raises(ConfigError) as caught:
        check_station(raw, "overrides")

    (issue,) = caught.value.issues
    assert (issue.file, issue.key) == ("overrides", "traceability.eject.signal")


@pytest.mark.parametrize("device", ["scanner", "printer"])
def test_a_simulated_reader_or_printer_may_not_take_the_server_port(device: str) -> None:
    section = f"[sim]\nmodbus_plc = false\n{device} = true\n{device}_port = 8080\n"

    (issue,) = issues(section)

    assert (issue.key, issue.message) == (
        f"sim.{device}_port", "port 8080 is already used by server.port")
    assert issue.line == line_of(section, f"{device}_port")


def test_simulated_devices_that_are_off_or_on_their_own_ports_clash_with_nothing() -> None:
    off = parse("[sim]\nscanner = false\nscanner_port = 8080\nprinter_port = 8080\n").sim
    on = parse("[sim]\nscanner = true\nprinter = true\n").sim

    assert off is not None and (off.scanner, off.printer) == (False, False)
    assert on is not None and (on.scanner_port, on.printer_port) == (5023, 9101)
    both = issues("[sim]\nscanner = true\nprinter = true\nprinter_port = 5023\n")
    assert [(i.key, i.message) for i in both] == [
        ("sim.printer_port", "port 5023 is already used by sim.scanner_port")]
