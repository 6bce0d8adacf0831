"""PLC config rules, station-wide rules (gpio, ports) and run-time overrides.

Each mistake must come back as one issue under the key an engineer would edit, with a
message that says what to do; a correct config must parse.
"""

from __future__ import annotations

import textwrap
from typing import Any

import msgspec
import pytest

from controller.config import (
    BindingMode,
    ConfigError,
    DeadbandType,
    Direction,
    HandshakeRole,
    Protocol,
    StationConfig,
    parse_config,
)
from controller.overrides import OVERRIDABLE, effective_config, replace_section

HEAD = '[station]\nid = "cell-7"\nname = "Cell 7"\n'

VALID = HEAD + """\
[server]
port = 8080

[gateways.modbus]
enabled = true
port = 5020

[gateways.opcua]
enabled = true
port = 4840

[[plcs]]
name = "press"
protocol = "MODBUS_TCP"
host = "127.0.0.1"
port = 502
bindings = [
{ name = "part", kind = "discrete_input", address = 0, type = "bool", pulse_counter = "n" },
{ name = "start_button", kind = "discrete_input", address = 1, type = "bool" },
{ name = "load_req", kind = "discrete_input", address = 2, type = "bool" },
{ name = "lamp", kind = "coil", address = 0, type = "bool", direction = "out" },
{ name = "load_ack", kind = "coil", address = 1, type = "bool", direction = "out" },
{ name = "load_done", kind = "coil", address = 2, type = "bool", direction = "out" },
{ name = "n", kind = "input_register", address = 0, type = "uint16" },
{ name = "plc_beat", kind = "input_register", address = 1, type = "uint16" },
{ name = "recipe", kind = "input_register", address = 2, type = "int16" },
{ name = "serial_no", kind = "input_register", address = 3, type = "string", count = 4 },
{ name = "takt_beat", kind = "holding_register", address = 0, type = "uint16", direction = "out" },
{ name = "verdict", kind = "holding_register", address = 1, type = "int16", direction = "out" },
{ name = "force", kind = "holding_register", address = 2, type = "float32", scale = 0.1 },
]

[plcs.heartbeat]
in_signal = "plc_beat"
out_signal = "takt_beat"
period_ms = 500

[[plcs.handshakes]]
name = "load"
role = "responder"
request = "load_req"
ack = "load_ack"
done = "load_done"
data = ["recipe", "serial_no"]
result = ["verdict"]

[[plcs]]
name = "feeder"
protocol = "MODBUS_RTU"
unit = 3

[plcs.serial]
device = "/dev/ttyUSB0"
baudrate = 9600
parity = "E"

[[plcs.bindings]]
name = "jam"
kind = "discrete_input"
address = 0
type = "bool"

[[plcs]]
name = "cell"
protocol = "OPC_UA"
endpoint = "opc.tcp://127.0.0.1:4841/cell"
bindings = [
{ name = "mode", node = "ns=2;i=1001", type = "int32", mode = "poll" },
{ name = "release_req", node = "ns=2;s=Release.Req", type = "bool", direction = "out" },
{ name = "release_part", node = "ns=2;s=Release.Part", type = "string", direction = "out" },
{ name = "release_ack", node = "ns=2;s=Release.Ack", type = "bool" },
{ name = "release_done", node = "ns=2;s=Release.Done", type = "bool" },
{ name = "release_slot", node = "ns=2;s=Release.Slot", type = "uint16" },
{ name = "load", node = "ns=2;i=7", type = "float32", sampling_interval_ms = 100 },
{ name = "temp", node = "ns=2;i=5", type = "float64", deadband_type = "percent", deadband = 2 },
]

[[plcs.handshakes]]
name = "release"
role = "requester"
request = "release_req"
ack = "release_ack"
done = "release_done"
data = ["release_part"]
result = ["release_slot"]
timeout_ms = 2000

[[plcs]]
name = "marker"
protocol = "TCP_SOCKET"
host = "127.0.0.1"
port = 9100
bindings = [
{ name = "ready", type = "bool", key = "MARKER.READY" },
{ name = "text", type = "string", direction = "out" },
]

[[gpio.buttons]]
name = "start"
plc = "press"
signal = "start_button"

[[gpio.buttons]]
name = "sim-button"

[[gpio.leds]]
name = "green"
plc = "press"
signal = "lamp"
"""


def _issues(text: str) -> dict[str, str]:
    """Every issue of a config that must be refused, as {key: message}."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "station.toml")
    issues = caught.value.issues
    assert len({issue.key for issue in issues}) == len(issues), "one issue per key"
    return {issue.key: issue.message for issue in issues}


def _one_issue(text: str) -> tuple[str, str]:
    issues = _issues(text)
    assert len(issues) == 1, issues
    (item,) = issues.items()
    return item


def _plc(body: str) -> str:
    return HEAD + "[[plcs]]\nname = \"p\"\n" + textwrap.dedent(body)


OPC_UA = 'protocol = "OPC_UA"\nendpoint = "opc.tcp://127.0.0.1:4840/p"\n'


# ---- a complete station with every protocol -----------------------------------------------


def test_a_station_with_every_protocol_parses() -> None:
    config = parse_config(VALID, "station.toml")

    plcs = {plc.name: plc for plc in config.plcs}
    assert [plc.protocol for plc in config.plcs] == [
        Protocol.MODBUS_TCP, Protocol.MODBUS_RTU, Protocol.OPC_UA, Protocol.TCP_SOCKET,
    ]
    press, feeder, cell, marker = plcs["press"], plcs["feeder"], plcs["cell"], plcs["marker"]
    assert press.heartbeat is not None
    assert (press.heartbeat.in_signal, press.heartbeat.period_ms) == ("plc_beat", 500)
    assert press.handshakes[0].role is HandshakeRole.RESPONDER
    assert press.handshakes[0].data == ("recipe", "serial_no")
    assert feeder.serial is not None and feeder.serial.device == "/dev/ttyUSB0"
    mode, temperature = cell.bindings[0], cell.bindings[-1]
    assert temperature.effective_mode(cell.protocol) is BindingMode.SUBSCRIBE
    assert temperature.deadband_type is DeadbandType.PERCENT
    assert mode.effective_mode(cell.protocol) is BindingMode.POLL
    assert cell.handshakes[0].role is HandshakeRole.REQUESTER
    assert cell.handshakes[0].timeout_ms == 2000
    assert [b.wire_key for b in marker.bindings] == ["MARKER.READY", "text"]
    assert marker.bindings[0].effective_mode(marker.protocol) is BindingMode.POLL
    assert [(p.name, p.plc, p.signal) for p in config.gpio.buttons] == [
        ("start", "press", "start_button"), ("sim-button", None, None),
    ]
    assert config.gateways.modbus.enabled and config.gateways.opcua.enabled


# ---- bindings that do not fit their PLC's protocol -----------------------------------------


@pytest.mark.parametrize(
    ("body", "key", "message"),
    [
        pytest.param(
            '[[plcs.bindings]]\nname = "a"\nkind = "coil"\ntype = "bool"\n',
            "plcs[0].bindings[0].address", "a MODBUS_TCP binding needs address",
            id="modbus-without-address",
        ),
        pytest.param(
            '[[plcs.bindings]]\nname = "a"\naddress = 3\ntype = "bool"\n',
            "plcs[0].bindings[0].kind", "a MODBUS_TCP binding needs kind",
            id="modbus-without-kind",
        ),
        pytest.param(
            'protocol = "OPC_UA"\n', "plcs[0].endpoint",
            "OPC_UA needs endpoint = 'opc.tcp://host:port/path'", id="opcua-without-endpoint",
        ),
        pytest.param(
            OPC_UA + '[[plcs.bindings]]\nname = "a"\ntype = "bool"\n',
            "plcs[0].bindings[0].node", "an OPC_UA binding needs node = 'ns=...;s=...'",
            id="opcua-binding-without-node",
        ),
        pytest.param(
            OPC_UA + '[[plcs.bindings]]\nname = "a"\ntype = "bool"\nnode = "Line1.Part"\n',
            "plcs[0].bindings[0].node", "'Line1.Part' is not an OPC-UA NodeId",
            id="malformed-node-id",
        ),
        pytest.param(
            OPC_UA + '[[plcs.bindings]]\nname = "a"\ntype = "bool"\nnode = "ns=2;x=5"\n',
            "plcs[0].bindings[0].node", "'ns=2;x=5' is not an OPC-UA NodeId",
            id="node-id-with-unknown-identifier-type",
        ),
        pytest.param(
            OPC_UA + '[[plcs.bindings]]\nname = "a"\ntype = "bool"\nnode = "ns=2;i=7"\n'
            'kind = "coil"\n',
            "plcs[0].bindings[0].kind", "kind applies to Modbus bindings, not OPC_UA",
            id="kind-on-opcua",
        ),
        pytest.param(
            '[[plcs.bindings]]\nname = "a"\nkind = "holding_register"\naddress = 0\n'
            'type = "float64"\n',
            "plcs[0].bindings[0].type", "float64 is not available over Modbus; use float32",
            id="float64-on-modbus",
        ),
        pytest.param(
            '[[plcs.bindings]]\nname = "a"\nkind = "coil"\naddress = 0\ntype = "bool"\n'
            'mode = "subscribe"\n',
            "plcs[0].bindings[0].mode", "Modbus has no subscriptions; use mode = 'poll'",
            id="subscribe-on-modbus",
        ),
        pytest.param(
            OPC_UA + '[[plcs.bindings]]\nname = "a"\ntype = "bool"\nnode = "ns=2;i=7"\n'
            'deadband_type = "absolute"\ndeadband = 1.0\n',
            "plcs[0].bindings[0].deadband_type", "a deadband applies to numbers, not bool",
            id="deadband-on-bool",
        ),
        pytest.param(
            OPC_UA + '[[plcs.bindings]]\nname = "a"\ntype = "float32"\nnode = "ns=2;i=7"\n'
            'deadband_type = "percent"\ndeadband = 150.0\n',
            "plcs[0].bindings[0].deadband", "a percent deadband is 0..100",
            id="percent-deadband-over-100",
        ),
        pytest.param(
            OPC_UA + '[[plcs.bindings]]\nname = "a"\ntype = "float32"\nnode = "ns=2;i=7"\n'
            "deadband = 0.5\n",
            "plcs[0].bindings[0].deadband",
            "deadband needs deadband_type 'absolute' or 'percent'",
            id="deadband-without-type",
        ),
        pytest.param(
            '[[plcs.bindings]]\nname = "a"\nkind = "coil"\naddress = 0\ntype = "bool"\n'
            "queue_size = 5\n",
            "plcs[0].bindings[0].queue_size", "queue_size applies to OPC_UA subscriptions only",
            id="queue-size-on-modbus",
        ),
        pytest.param(
            'protocol = "TCP_SOCKET"\n[[plcs.bindings]]\nname = "a"\ntype = "int16"\n'
            "sampling_interval_ms = 100\n",
            "plcs[0].bindings[0].sampling_interval_ms",
            "sampling_interval_ms applies to OPC_UA subscriptions only",
            id="sampling-interval-on-tcp-socket",
        ),
        pytest.param(
            '[[plcs.bindings]]\nname = "a"\nkind = "coil"\naddress = 0\ntype = "bool"\n'
            'key = "A"\n',
            "plcs[0].bindings[0].key", "key applies to TCP_SOCKET bindings, not MODBUS_TCP",
            id="socket-key-on-modbus",
        ),
        pytest.param(
            'protocol = "TCP_SOCKET"\n[[plcs.bindings]]\nname = "a"\ntype = "bool"\n'
            'mode = "subscribe"\n',
            "plcs[0].bindings[0].mode", "TCP_SOCKET signals are pushed and polled",
            id="subscribe-on-tcp-socket",
        ),
        pytest.param(
            'protocol = "TCP_SOCKET"\n[[plcs.bindings]]\nname = "a"\ntype = "bool"\n'
            'node = "ns=2;i=7"\n',
            "plcs[0].bindings[0].node", "node applies to OPC_UA bindings, not TCP_SOCKET",
            id="node-on-tcp-socket",
        ),
        pytest.param(
            'protocol = "MODBUS_RTU"\n', "plcs[0].serial",
            "MODBUS_RTU needs a [serial] table with the device path", id="rtu-without-serial",
        ),
        pytest.param(
            '[plcs.serial]\ndevice = "/dev/ttyS0"\n', "plcs[0].serial",
            "serial applies to MODBUS_RTU only, not MODBUS_TCP", id="serial-on-tcp",
        ),
        pytest.param(
            'endpoint = "opc.tcp://127.0.0.1:4840/p"\n', "plcs[0].endpoint",
            "endpoint applies to OPC_UA only, not MODBUS_TCP", id="endpoint-on-modbus",
        ),
    ],
)
def test_binding_rule_is_reported_at_its_key(body: str, key: str, message: str) -> None:
    found_key, found_message = _one_issue(_plc(body))

    assert found_key == key
    assert message in found_message


def test_modbus_binding_without_kind_and_address_names_both() -> None:
    issues = _issues(_plc('[[plcs.bindings]]\nname = "a"\ntype = "bool"\n'))

    assert issues == {
        "plcs[0].bindings[0].kind": "a MODBUS_TCP binding needs kind",
        "plcs[0].bindings[0].address": "a MODBUS_TCP binding needs address",
    }


def test_every_subscription_option_on_modbus_is_named() -> None:
    issues = _issues(_plc(
        '[[plcs.bindings]]\nname = "a"\nkind = "holding_register"\naddress = 0\n'
        'type = "int16"\ndeadband_type = "absolute"\ndeadband = 2.0\n'
        "publishing_interval_ms = 100\n"
    ))

    assert set(issues) == {
        "plcs[0].bindings[0].deadband_type",
        "plcs[0].bindings[0].deadband",
        "plcs[0].bindings[0].publishing_interval_ms",
    }
    assert all("applies to OPC_UA subscriptions only" in m for m in issues.values())


def test_a_node_bound_twice_is_reported_at_the_second_binding() -> None:
    body = OPC_UA + textwrap.dedent("""\
        bindings = [
          { name = "a", type = "bool", node = "ns=2;s=Part" },
          { name = "b", type = "int16", node = "ns=2;i=9" },
          { name = "c", type = "bool", node = "ns=2;s=Part" },
        ]
    """)

    assert _one_issue(_plc(body)) == (
        "plcs[0].bindings[2].node", "node ns=2;s=Part is already bound at plcs[0].bindings[0]"
    )


@pytest.mark.parametrize(
    "bindings",
    [
        '{ name = "ready", type = "bool", key = "READY" },\n'
        '{ name = "ready_too", type = "bool", key = "READY" },\n',
        # The second binding's wire key defaults to its name, which the first one claims.
        '{ name = "ready", type = "bool", key = "state" },\n'
        '{ name = "state", type = "int16" },\n',
    ],
    ids=["same-key", "key-equals-other-name"],
)
def test_two_socket_bindings_on_one_wire_key_are_refused(bindings: str) -> None:
    text = _plc(f'protocol = "TCP_SOCKET"\nbindings = [\n{bindings}]\n')

    key, _ = _one_issue(text)

    assert key.startswith("plcs[0].bindings[1].")


def test_issues_point_at_the_line_of_the_binding() -> None:
    text = _plc(OPC_UA + '[[plcs.bindings]]\nname = "a"\ntype = "bool"\nnode = "bad"\n')

    with pytest.raises(ConfigError) as caught:
        parse_config(text, "station.toml")

    (issue,) = caught.value.issues
    assert text.splitlines()[issue.line - 1] == 'node = "bad"'


@pytest.mark.parametrize("protocol", ["PROFINET", "ETHERNET_IP"])
def test_unsupported_protocol_gives_one_clear_error_and_no_binding_noise(protocol: str) -> None:
    # Bindings that fit no protocol at all: without a driver they are not worth a word.
    body = f'protocol = "{protocol}"\n' + textwrap.dedent("""\
        bindings = [
          { name = "a", type = "bool" },
          { name = "b", type = "float64", key = "B", node = "ns=2;i=1", mode = "subscribe" },
          { name = "c", type = "int16", queue_size = 4 },
        ]
    """)

    key, message = _one_issue(_plc(body))

    assert key == "plcs[0].protocol"
    assert message == (
        f"protocol {protocol} is not supported by Takt "
        "(supported: MODBUS_TCP, MODBUS_RTU, OPC_UA, TCP_SOCKET)"
    )


# ---- pulse counters, heartbeat and handshakes name bindings of their PLC --------------------

_MODBUS_SIGNALS = """\
bindings = [
{ name = "sensor", kind = "discrete_input", address = 0, type = "bool" },
{ name = "req_in", kind = "discrete_input", address = 1, type = "bool" },
{ name = "flag_out", kind = "coil", address = 0, type = "bool", direction = "out" },
{ name = "flag2_out", kind = "coil", address = 1, type = "bool", direction = "out" },
{ name = "count_in", kind = "input_register", address = 0, type = "uint16" },
{ name = "real_in", kind = "input_register", address = 1, type = "float32" },
{ name = "word_out", kind = "holding_register", address = 0, type = "int16", direction = "out" },
{ name = "real_out", kind = "holding_register", address = 1, type = "float32", direction = "out" },
]
"""


def _with_signals(extra: str, *, sensor: str = "") -> str:
    signals = _MODBUS_SIGNALS
    if sensor:
        signals = signals.replace('type = "bool" },', f'type = "bool", {sensor} }},', 1)
    return _plc(signals + textwrap.dedent(extra))


@pytest.mark.parametrize(
    ("sensor", "message"),
    [
        ('pulse_counter = "missing"', "no binding named 'missing' in this PLC"),
        ('pulse_counter = "real_in"', "'real_in' must be an integer input to count pulses"),
        ('pulse_counter = "word_out"', "'word_out' must be an integer input to count pulses"),
    ],
)
def test_pulse_counter_must_name_an_integer_input(sensor: str, message: str) -> None:
    assert _one_issue(_with_signals("", sensor=sensor)) == (
        "plcs[0].bindings[0].pulse_counter", message
    )


def test_pulse_counter_belongs_on_a_bool_input() -> None:
    body = _MODBUS_SIGNALS.replace(
        'name = "real_in", kind = "input_register", address = 1, type = "float32"',
        'name = "real_in", kind = "input_register", address = 1, type = "float32", '
        'pulse_counter = "count_in"',
    )

    assert _one_issue(_plc(body)) == (
        "plcs[0].bindings[5].pulse_counter", "pulse_counter belongs on a bool input"
    )


def test_valid_pulse_counter_parses() -> None:
    config = parse_config(_with_signals("", sensor='pulse_counter = "count_in"'), "s.toml")

    assert config.plcs[0].bindings[0].pulse_counter == "count_in"


@pytest.mark.parametrize(
    ("heartbeat", "key", "message"),
    [
        ('in_signal = "gone"', "plcs[0].heartbeat.in_signal",
         "no binding named 'gone' in this PLC"),
        ('in_signal = "word_out"', "plcs[0].heartbeat.in_signal",
         "'word_out' must be an integer binding with direction 'in'"),
        ('out_signal = "count_in"', "plcs[0].heartbeat.out_signal",
         "'count_in' must be an integer binding with direction 'out'"),
        ('in_signal = "real_in"', "plcs[0].heartbeat.in_signal",
         "'real_in' must be an integer binding with direction 'in'"),
        ('out_signal = "flag_out"', "plcs[0].heartbeat.out_signal",
         "'flag_out' must be an integer binding with direction 'out'"),
        ("period_ms = 200", "plcs[0].heartbeat", "name in_signal, out_signal or both"),
    ],
)
def test_heartbeat_signals_must_be_integer_bindings_of_the_right_direction(
    heartbeat: str, key: str, message: str
) -> None:
    assert _one_issue(_with_signals(f"[plcs.heartbeat]\n{heartbeat}\n")) == (key, message)


def test_heartbeat_both_ways_parses() -> None:
    config = parse_config(
        _with_signals('[plcs.heartbeat]\nin_signal = "count_in"\nout_signal = "word_out"\n'),
        "s.toml",
    )

    assert config.plcs[0].heartbeat is not None
    assert config.plcs[0].heartbeat.out_signal == "word_out"


def _handshake(role: str, **signals: str) -> str:
    lines = [f'name = "hs"\nrole = "{role}"']
    lines += [f"{field} = {value}" for field, value in signals.items()]
    return _with_signals("[[plcs.handshakes]]\n" + "\n".join(lines) + "\n")


_RESPONDER_OK = {"request": '"req_in"', "ack": '"flag_out"', "done": '"flag2_out"',
                 "data": '["count_in", "real_in"]', "result": '["word_out"]'}
_REQUESTER_OK = {"request": '"flag_out"', "ack": '"req_in"', "done": '"sensor"',
                 "data": '["word_out"]', "result": '["count_in", "real_in"]'}


@pytest.mark.parametrize(("role", "signals"), [("responder", _RESPONDER_OK),
                                               ("requester", _REQUESTER_OK)])
def test_handshake_with_signals_in_the_right_directions_parses(
    role: str, signals: dict[str, str]
) -> None:
    config = parse_config(_handshake(role, **signals), "s.toml")

    assert config.plcs[0].handshakes[0].role is HandshakeRole(role)


@pytest.mark.parametrize(
    ("role", "field", "value", "message"),
    [
        ("responder", "request", '"flag_out"',
         "as responder, request 'flag_out' must have direction 'in'"),
        ("responder", "data", '["count_in", "word_out"]',
         "as responder, data 'word_out' must have direction 'in'"),
        ("responder", "ack", '"req_in"', "as responder, ack 'req_in' must have direction 'out'"),
        ("responder", "done", '"sensor"', "as responder, done 'sensor' must have direction 'out'"),
        ("responder", "result", '["real_in"]',
         "as responder, result 'real_in' must have direction 'out'"),
        ("requester", "request", '"req_in"',
         "as requester, request 'req_in' must have direction 'out'"),
        ("requester", "data", '["count_in"]',
         "as requester, data 'count_in' must have direction 'out'"),
        ("requester", "ack", '"flag2_out"',
         "as requester, ack 'flag2_out' must have direction 'in'"),
        ("requester", "result", '["real_out"]',
         "as requester, result 'real_out' must have direction 'in'"),
        ("responder", "ack", '"word_out"', "'word_out' must be a bool flag"),
        ("requester", "done", '"count_in"', "'count_in' must be a bool flag"),
        ("requester", "request", '"real_out"', "'real_out' must be a bool flag"),
        ("responder", "result", '["word_out", "nowhere"]',
         "no binding named 'nowhere' in this PLC"),
        ("requester", "done", '"nowhere"', "no binding named 'nowhere' in this PLC"),
    ],
)
def test_handshake_signal_that_does_not_fit_the_role_is_reported(
    role: str, field: str, value: str, message: str
) -> None:
    ok = _RESPONDER_OK if role == "responder" else _REQUESTER_OK
    signals = {**ok, field: value}

    assert _one_issue(_handshake(role, **signals)) == (f"plcs[0].handshakes[0].{field}", message)


def test_duplicate_handshake_names_are_reported() -> None:
    one = "\n".join(f"{k} = {v}" for k, v in _RESPONDER_OK.items())
    text = _with_signals(
        f'[[plcs.handshakes]]\nname = "hs"\nrole = "responder"\n{one}\n'
        f'[[plcs.handshakes]]\nname = "hs"\nrole = "responder"\n{one}\n'
    )

    key, message = _one_issue(text)

    assert key == "plcs[0].handshakes[1].name"
    assert message.startswith("duplicate handshake name 'hs'")


# ---- gpio points on PLC signals ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "key", "message"),
    [
        ('[[gpio.buttons]]\nname = "b"\nplc = "nope"\nsignal = "sensor"\n',
         "gpio.buttons[0].plc", "no PLC named 'nope'"),
        ('[[gpio.buttons]]\nname = "b"\nplc = "p"\nsignal = "ghost"\n',
         "gpio.buttons[0].signal", "PLC 'p' has no signal 'ghost'"),
        ('[[gpio.buttons]]\nname = "b"\nplc = "p"\nsignal = "count_in"\n',
         "gpio.buttons[0].signal", "p.count_in must be a bool with direction 'in'"),
        ('[[gpio.buttons]]\nname = "b"\nplc = "p"\nsignal = "flag_out"\n',
         "gpio.buttons[0].signal", "p.flag_out must be a bool with direction 'in'"),
        ('[[gpio.leds]]\nname = "l"\nplc = "p"\nsignal = "sensor"\n',
         "gpio.leds[0].signal", "p.sensor must be a bool with direction 'out'"),
        ('[[gpio.leds]]\nname = "l"\nplc = "p"\n',
         "gpio.leds[0]", "give both plc and signal, or neither for a simulated point"),
        ('[[gpio.buttons]]\nname = "b"\nsignal = "sensor"\n',
         "gpio.buttons[0]", "give both plc and signal, or neither for a simulated point"),
        ('[[gpio.buttons]]\nname = "b"\n[[gpio.buttons]]\nname = "b"\n',
         "gpio.buttons[1].name", "duplicate button name 'b' (first used at gpio.buttons[0])"),
    ],
)
def test_gpio_point_must_name_a_bool_signal_of_the_right_direction(
    point: str, key: str, message: str
) -> None:
    assert _one_issue(_with_signals(point)) == (key, message)


def test_gpio_points_on_plc_signals_parse() -> None:
    config = parse_config(_with_signals(
        '[[gpio.buttons]]\nname = "b"\nplc = "p"\nsignal = "sensor"\n'
        '[[gpio.leds]]\nname = "l"\nplc = "p"\nsignal = "flag_out"\n'
    ), "s.toml")

    assert config.gpio.leds[0].signal == "flag_out"


# ---- two services on one port ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ("[gateways.modbus]\nenabled = true\nport = 8080\n", "gateways.modbus.port",
         "port 8080 is already used by server.port"),
        ("[gateways.opcua]\nenabled = true\nport = 8080\n", "gateways.opcua.port",
         "port 8080 is already used by server.port"),
        ("[gateways.modbus]\nenabled = true\nport = 4840\n[gateways.opcua]\nenabled = true\n",
         "gateways.opcua.port", "port 4840 is already used by gateways.modbus.port"),
        ("[gateways.modbus]\nenabled = true\nhost = '0.0.0.0'\nport = 5021\n[sim]\n",
         "sim.modbus_plc_port", "port 5021 is already used by gateways.modbus.port"),
        ("[sim]\nopcua_plc = true\nopcua_plc_port = 8080\n", "sim.opcua_plc_port",
         "port 8080 is already used by server.port"),
    ],
)
def test_two_services_on_one_port_are_refused(extra: str, key: str, message: str) -> None:
    assert _one_issue(HEAD + extra) == (key, message)


@pytest.mark.parametrize(
    "extra",
    [
        "[gateways.modbus]\nenabled = false\nport = 8080\n",
        "[gateways.opcua]\nport = 8080\n",  # off by default
        "[sim]\nopcua_plc = false\nopcua_plc_port = 8080\n",
    ],
)
def test_a_disabled_service_does_not_hold_its_port(extra: str) -> None:
    assert parse_config(HEAD + extra, "s.toml").server.port == 8080


# ---- run-time overrides --------------------------------------------------------------------


@pytest.fixture
def station() -> StationConfig:
    return parse_config(VALID, "station.toml")


@pytest.mark.parametrize("section", sorted(OVERRIDABLE))
def test_override_with_the_same_data_round_trips(station: StationConfig, section: str) -> None:
    value = msgspec.to_builtins(getattr(station, section))

    assert replace_section(station, section, value) == station


def test_override_replaces_only_its_section(station: StationConfig) -> None:
    plcs = msgspec.to_builtins(station.plcs)
    plcs[0]["host"] = "10.0.0.5"
    plcs[0]["bindings"] = [b for b in plcs[0]["bindings"] if b["name"] != "force"]

    changed = replace_section(station, "plcs", plcs)

    press = changed.plcs[0]
    assert press.host == "10.0.0.5"
    assert press.binding("force") is None
    assert press.binding("part") == station.plcs[0].binding("part")
    assert changed.plcs[1:] == station.plcs[1:]
    assert (changed.gpio, changed.gateways, changed.server) == (
        station.gpio, station.gateways, station.server
    )


def test_invalid_override_is_refused_with_the_key_to_fix(station: StationConfig) -> None:
    plcs = msgspec.to_builtins(station.plcs)
    plcs[0]["bindings"][1]["address"] = 70_000
    plcs[2]["bindings"][0]["node"] = "Cell.Temperature"

    with pytest.raises(ConfigError) as caught:
        replace_section(station, "plcs", plcs)

    issues = {issue.key: issue for issue in caught.value.issues}
    assert set(issues) == {"plcs[0].bindings[1].address", "plcs[2].bindings[0].node"}
    assert "65535" in issues["plcs[0].bindings[1].address"].message
    assert "is not an OPC-UA NodeId" in issues["plcs[2].bindings[0].node"].message
    assert {issue.file for issue in caught.value.issues} == {"override of plcs"}


def test_override_is_checked_against_the_rest_of_the_station(station: StationConfig) -> None:
    # Dropping a PLC that a gpio point still uses.
    plcs = [p for p in msgspec.to_builtins(station.plcs) if p["name"] != "press"]

    with pytest.raises(ConfigError) as caught:
        replace_section(station, "plcs", plcs)

    assert {issue.key for issue in caught.value.issues} == {
        "gpio.buttons[0].plc", "gpio.leds[0].plc"
    }


def test_gateway_override_on_the_server_port_is_refused(station: StationConfig) -> None:
    gateways = msgspec.to_builtins(station.gateways)
    gateways["modbus"]["port"] = station.server.port

    with pytest.raises(ConfigError) as caught:
        replace_section(station, "gateways", gateways)

    (issue,) = caught.value.issues
    assert (issue.key, issue.message) == ("gateways.modbus.port",
                                          "port 8080 is already used by server.port")


@pytest.mark.parametrize("section", ["station", "server", "store", "supervision", "sim"])
def test_file_only_sections_cannot_be_overridden(station: StationConfig, section: str) -> None:
    with pytest.raises(ConfigError) as caught:
        replace_section(station, section, msgspec.to_builtins(getattr(station, section)))

    (issue,) = caught.value.issues
    assert (issue.key, issue.message) == (section, f"{section} cannot be overridden at run time")


def test_effective_config_applies_every_stored_override(station: StationConfig) -> None:
    plcs = [p for p in msgspec.to_builtins(station.plcs) if p["name"] != "marker"]
    gpio: dict[str, Any] = {"buttons": [], "leds": [{"name": "red", "plc": "press",
                                                     "signal": "lamp"}]}
    gateways = msgspec.to_builtins(station.gateways)
    gateways["opcua"]["enabled"] = False

    effective = effective_config(station, {"plcs": plcs, "gpio": gpio, "gateways": gateways})

    assert [p.name for p in effective.plcs] == ["press", "feeder", "cell"]
    assert effective.gpio.buttons == ()
    assert [(led.name, led.signal) for led in effective.gpio.leds] == [("red", "lamp")]
    assert not effective.gateways.opcua.enabled
    assert effective.station == station.station
    assert effective_config(station, {}) == station


def test_effective_config_checks_the_overrides_together(station: StationConfig) -> None:
    # Each override alone is fine; together the LED names a PLC that is gone.
    plcs = [p for p in msgspec.to_builtins(station.plcs) if p["name"] != "press"]
    gpio = {"leds": [{"name": "red", "plc": "press", "signal": "lamp"}]}

    with pytest.raises(ConfigError) as caught:
        effective_config(station, {"plcs": plcs, "gpio": gpio})

    assert [issue.key for issue in caught.value.issues] == ["gpio.leds[0].plc"]


def test_effective_config_refuses_a_stored_file_only_section(station: StationConfig) -> None:
    with pytest.raises(ConfigError) as caught:
        effective_config(station, {"server": {"port": 9090}})

    assert [issue.key for issue in caught.value.issues] == ["server"]


def test_direction_enum_round_trips_through_builtins(station: StationConfig) -> None:
    plcs = msgspec.to_builtins(station.plcs)

    assert plcs[0]["bindings"][3]["direction"] == "out"
    assert replace_section(station, "plcs", plcs).plcs[0].bindings[3].direction is Direction.OUT


def test_subscription_options_on_a_polled_opcua_binding_are_refused() -> None:
    body = OPC_UA + """
      [[plcs.bindings]]
      name = "t"
      node = "ns=2;s=T"
      type = "float64"
      mode = "poll"
      deadband_type = "absolute"
      deadband = 0.5
    """
    issues = _issues(_plc(body))
    assert issues == {
        "plcs[0].bindings[0].deadband_type": "deadband_type applies to subscribed bindings only",
        "plcs[0].bindings[0].deadband": "deadband applies to subscribed bindings only",
    }


def test_a_gpio_point_on_a_disabled_plc_is_refused() -> None:
    text = HEAD + textwrap.dedent("""
        [[plcs]]
        name = "p"
        enabled = false
          [[plcs.bindings]]
          name = "b"
          kind = "coil"
          address = 0
          type = "bool"

        [[gpio.buttons]]
        name = "start"
        plc = "p"
        signal = "b"
    """)
    assert _one_issue(text) == ("gpio.buttons[0].plc", "PLC 'p' is disabled")
