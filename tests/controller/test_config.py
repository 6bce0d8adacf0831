"""Station config: the demo loads, and every mistake is reported at its line and key."""

from __future__ import annotations

import json
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import (
    ConfigError,
    Direction,
    Protocol,
    ValueType,
    embedded_demo_config_path,
    load_config,
    parse_config,
)
from controller.config_lines import index_key, join_key, key_lines
from controller.trace_config import EjectConfig, LabelRule


def _issues(text: str, filename: str = "station.toml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(textwrap.dedent(text), filename)
    return str(caught.value).splitlines()


def test_embedded_demo_station_loads() -> None:
    config = load_config(embedded_demo_config_path())

    assert config.station.id == "demo"
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    line1, cell = config.plcs
    assert (line1.name, line1.protocol, line1.host, line1.port, line1.unit) == (
        "line1", Protocol.MODBUS_TCP, "127.0.0.1", 5021, 1)
    assert line1.poll_interval_ms == 50
    tags = {tag.name: tag for tag in line1.bindings}
    assert {name for name, tag in tags.items() if tag.durable} == {"part_present", "fault_code"}
    assert {name for name, tag in tags.items() if tag.direction is Direction.OUT} == {
        "release", "andon_led", "reject", "station_state"}
    assert (tags["temperature"].type, tags["temperature"].width) == (ValueType.FLOAT32, 2)
    assert (cell.protocol, cell.endpoint) == (Protocol.OPC_UA, "opc.tcp://127.0.0.1:4841/takt/plc")
    assert cell.heartbeat is not None and cell.heartbeat.in_signal == "plc_heartbeat"
    # The simulators listen where the PLCs point, and Takt's own servers on their defaults.
    assert config.sim is not None
    assert (config.sim.modbus_plc_port, config.sim.opcua_plc_port) == (5021, 4841)
    assert (config.gateways.modbus.port, config.gateways.opcua.port) == (5020, 4840)
    assert config.gateways.modbus.host == config.gateways.opcua.host == "127.0.0.1"
    assert [b.name for b in config.gpio.buttons] == ["start", "help"]
    # The line: a reader and a printer on their simulators, codes ejected through line1.
    assert (config.scanners[0].port, config.printers[0].port) == (
        config.sim.scanner_port, config.sim.printer_port)
    trace = config.traceability
    assert (trace.industry, trace.eject, trace.labels.batch) == (
        "water", EjectConfig(plc="line1", signal="reject"),
        LabelRule(printer="labels", template="batch"))


def test_minimal_station_gets_safe_defaults() -> None:
    config = parse_config('[station]\nid = "cell-7"\nname = "Cell 7"\n', "cell.toml")

    assert config.server.host == "127.0.0.1"
    assert config.plcs == ()
    # No [sim] section: a real station starts no simulator.
    assert config.sim is None


def test_every_mistake_is_reported_with_its_line_and_key() -> None:
    text = """\
        # Cell 7, with six mistakes
        [station]
        id = "cell-7"
        name = "Cell 7"
        colour = "blue"

        [[plcs]]
        name = "press"
        protocol = "PROFINET"
        port = "502"

          [[plcs.bindings]]
          name = "part_present"
          kind = "coil"
          address = 0
          type = "bool"

          [[plcs.bindings]]
          name = "part_present"
          kind = "coil"
          address = 1
          type = "float32"

          [[plcs.bindings]]
          name = "temperature"
          kind = "holding_register"
          address = 10
          type = "float32"

          [[plcs.bindings]]
          name = "pressure"
          kind = "holding_register"
          address = 11
          type = "uint16"
        """

    lines = _issues(text, "cell7.toml")

    assert [line.split(": ")[0] + ": " + line.split(": ")[1] for line in lines] == [
        "cell7.toml:5: station.colour",
        "cell7.toml:9: plcs[0].protocol",
        "cell7.toml:10: plcs[0].port",
        "cell7.toml:19: plcs[0].bindings[1].name",
        "cell7.toml:22: plcs[0].bindings[1].type",
        "cell7.toml:33: plcs[0].bindings[3].address",
    ]
    unknown, profinet, port, duplicate, coil, overlap = lines
    assert "unknown key 'colour'" in unknown
    assert profinet.endswith(
        "protocol PROFINET is not supported by Takt "
        "(supported: MODBUS_TCP, MODBUS_RTU, OPC_UA, TCP_SOCKET)"
    )
    assert "Expected `int`, got `str`" in port
    assert "duplicate binding name 'part_present'" in duplicate
    assert "type must be bool, not float32" in coil
    assert "overlaps 'temperature'" in overlap


def test_config_error_carries_structured_issues() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('[station]\nid = "x"\nname = "X"\n[server]\nport = 0\n', "s.toml")

    (issue,) = caught.value.issues
    assert (issue.file, issue.line, issue.key) == ("s.toml", 5, "server.port")


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            '[[plcs]]\nname = "p"\nprotocol = "OPC_UA"\n',
            "4: plcs[0].endpoint: OPC_UA needs endpoint = 'opc.tcp://host:port/path'",
        ),
        (
            '[[plcs]]\nname = "p"\n[[plcs]]\nname = "p"\n',
            "7: plcs[1].name: duplicate plc name 'p'",
        ),
        ("[[plcs]]\nport = 502\n", "4: plcs[0].name: missing required key 'name'"),
        (
            '[server]\ncors_origins = ["http://hmi.local", 3]\n',
            "5: server.cors_origins[1]: Expected `str`, got `int`",
        ),
        (
            '[[plcs]]\nname = "p"\nbindings = [\n  { name = "id", kind = "input_register",'
            ' address = 0, type = "string" },\n]\n',
            "7: plcs[0].bindings[0].count: type string needs count >= 1",
        ),
        (
            '[[plcs]]\nname = "p"\n[[plcs.bindings]]\nname = "lamp"\nkind = "discrete_input"\n'
            'address = 3\ntype = "bool"\ndirection = "out"\n',
            "11: plcs[0].bindings[0].direction: discrete_input is read-only in Modbus",
        ),
        (
            "[supervision]\nmax_restarts = 10\nwithin_s = 60\nbackoff_max_s = 5\n",
            "5: supervision.max_restarts: must be greater than within_s / backoff_max_s + 1 = 13",
        ),
        (
            "[supervision]\nbackoff_min_s = 6.0\n",
            "5: supervision.backoff_min_s: backoff_min_s (6) must not exceed backoff_max_s (5)",
        ),
    ],
)
def test_rule_is_reported_at_its_key(extra: str, expected: str) -> None:
    text = '[station]\nid = "s"\nname = "S"\n' + extra

    (issue,) = _issues(text)

    assert issue.startswith(f"station.toml:{expected}")


def test_syntax_error_reports_its_line() -> None:
    text = '[station]\nid = "s"\nname = "S"\n\n[server\nport = 8080\n'

    assert _issues(text) == [
        "station.toml:5: <syntax>: Expected ']' at the end of a table declaration (at column 8)"
    ]


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "station.toml"

    with pytest.raises(ConfigError) as caught:
        load_config(missing)

    assert str(caught.value).startswith(f"{missing}:0: <file>: cannot read the file")


# ---- the line locator, against random documents -----------------------------------------

_SCALARS = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        [
            *("true", "false", "inf", "-nan", "0x1F", "1_000", "+1.5e3"),
            *("07:32:00", "1979-05-27", "1979-05-27 07:32:00Z", "1979-05-27T07:32:00.5+01:00"),
        ]
    ),
    st.text(
        st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from('"\\#=[]{},.'),
        max_size=8,
    ).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.text(
        st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="'"), max_size=8
    ).map(lambda s: f"'{s}'"),
)
_STRING_LINES = [
    "x = 1",
    "[not.a.table]",
    "[[nor.this]]",
    "# not a comment",
    "a {b} c",
    "'it' \"\" x",
]
_FILLER = ["", "# comment", "   # k = 1", "\t", "# [[plcs]]"]
_INDENTS = ["", "  ", "\t"]


class _RandomToml:
    """Writes a random valid document and records the line of every key it writes."""

    def __init__(self, data: st.DataObject) -> None:
        self.draw = data.draw
        self.lines: list[str] = []
        self.expected: dict[str, int] = {}
        self.leaves: set[str] = set()

    def document(self) -> str:
        self.body("")
        for section in range(self.draw(st.integers(0, 3))):
            self.filler()
            if self.draw(st.booleans()):
                self.table(f"t{section}", f"[{self.pad()}t{section}{self.pad()}]")
            else:
                self.array_of_tables(f"a{section}")
        return "\n".join(self.lines) + "\n"

    def table(self, key: str, header: str) -> None:
        self.expected[key] = self.emit(header + self.comment())
        self.body(key)

    def array_of_tables(self, name: str) -> None:
        for index in range(self.draw(st.integers(1, 3))):
            self.table(index_key(name, index), f"[[{self.pad()}{name}{self.pad()}]]")
            for inner in range(self.draw(st.integers(0, 2))):
                self.table(index_key(f"{name}[{index}].inner", inner), f"[[{name}.inner]]")
            if self.draw(st.booleans()):
                self.table(f"{name}[{index}].meta", f"[{name} . meta]")

    def body(self, prefix: str) -> None:
        for index in range(self.draw(st.integers(0, 4))):
            self.filler()
            key_text, parts = self.key(f"k{index}")
            value, positions = self.value(key := _join(prefix, parts), inline=False)
            line = self.emit(f"{self.draw(st.sampled_from(_INDENTS))}{key_text} = {value}")
            self.lines[-1] += self.comment()
            self.expected[key] = line
            if len(parts) == 2:
                self.expected[_join(prefix, parts[:1])] = line
            for element_key, offset in positions:
                self.expected[element_key] = line + offset

    def key(self, base: str) -> tuple[str, list[str]]:
        style = self.draw(st.sampled_from(["bare", "basic", "literal", "dotted"]))
        if style == "basic":
            return f'"{base} q.x\\u0041"', [f"{base} q.xA"]
        if style == "literal":
            return f"'{base}.lit'", [f"{base}.lit"]
        if style == "dotted":
            return f'{base}{self.pad()}.{self.pad()}"sub"', [base, "sub"]
        return base, [base]

    def value(self, key: str, *, inline: bool) -> tuple[str, list[tuple[str, int]]]:
        """Value text, and (key, lines below the value's first line) of keys inside it."""
        kinds = ["scalar"] * 3 + ["array", "inline_table"]
        if not inline:
            kinds += ["multiline_string", "multiline_array"]
        kind = self.draw(st.sampled_from(kinds))
        if kind == "scalar":
            self.leaves.add(key)
            return self.draw(_SCALARS), []
        if kind == "multiline_string":
            self.leaves.add(key)
            quote = self.draw(st.sampled_from(['"', "'"]))
            content = self.draw(st.lists(st.sampled_from(_STRING_LINES), max_size=3))
            ending = quote * self.draw(st.integers(0, 2))
            return quote * 3 + "\n" + "\n".join(content) + ending + quote * 3, []
        if kind == "inline_table":
            return self.inline_table(key)
        return self.array(key, multiline=kind == "multiline_array")

    def array(self, key: str, *, multiline: bool) -> tuple[str, list[tuple[str, int]]]:
        text, positions = "[", []
        for index in range(self.draw(st.integers(0, 3))):
            if multiline:
                text += "\n  # between elements\n  " if self.draw(st.booleans()) else "\n  "
            element = index_key(key, index)
            value, inner = self.value(element, inline=not multiline)
            offset = text.count("\n")
            positions += [(element, offset)] + [(k, offset + o) for k, o in inner]
            text += f" {value},"
        return text + ("\n]" if multiline else " ]"), positions

    def inline_table(self, key: str) -> tuple[str, list[tuple[str, int]]]:
        entries, positions = [], []
        for index in range(self.draw(st.integers(0, 3))):
            key_text, parts = self.key(f"i{index}")
            entry_key = _join(key, parts)
            value, inner = self.value(entry_key, inline=True)
            entries.append(f"{key_text} = {value}")
            positions += [(entry_key, 0), *inner]
            if len(parts) == 2:
                positions.append((_join(key, parts[:1]), 0))
        return "{ " + ", ".join(entries) + " }", positions

    def emit(self, text: str) -> int:
        self.lines.extend(text.split("\n"))
        return len(self.lines) - text.count("\n")

    def filler(self) -> None:
        for _ in range(self.draw(st.integers(0, 2))):
            self.emit(self.draw(st.sampled_from(_FILLER)))

    def comment(self) -> str:
        return self.draw(st.sampled_from(["", "  # trailing = [comment]"]))

    def pad(self) -> str:
        return self.draw(st.sampled_from(["", " "]))


def _join(prefix: str, parts: list[str]) -> str:
    for part in parts:
        prefix = join_key(prefix, part)
    return prefix


def _leaf_keys(value: Any, key: str = "") -> set[str]:
    if isinstance(value, dict):
        return set().union(*(_leaf_keys(v, join_key(key, k)) for k, v in value.items()))
    if isinstance(value, list):
        return set().union(*(_leaf_keys(v, index_key(key, i)) for i, v in enumerate(value)))
    return {key}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_locator_finds_the_line_of_every_key(data: st.DataObject) -> None:
    document = _RandomToml(data)
    text = document.document()
    # The generator's idea of the keys must be TOML's, or this test would prove nothing.
    assert _leaf_keys(tomllib.loads(text)) == document.leaves

    lines = key_lines(text)

    assert {key: lines.get(key) for key in document.expected} == document.expected


def test_names_with_a_trailing_newline_are_refused() -> None:
    # Python's `$` also matches before a final newline; every name pattern says `(?!\n)$`.
    with pytest.raises(ConfigError) as caught:
        parse_config('[station]\nid = "cell\\n"\nname = "Cell"\n', "t.toml")
    assert "station.id" in str(caught.value)
