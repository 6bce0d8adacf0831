"""The [[wrenches]] config: defaults, the checks every mistake meets, Takt's own torque check,
and how wrench events read in the journal."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.config import ConfigError, parse_config
from controller.config_check import check_table
from controller.events import Category, Severity, classify
from controller.wrench_config import (
    TorqueSettings,
    WrenchManufacturer,
    WrenchProtocol,
    WrenchPset,
    check_tightening,
    cnm,
)

HEAD = '[station]\nid = "t"\nname = "t"\n'


def issues(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(HEAD + textwrap.dedent(text), "station.toml")
    return {issue.key: issue.message for issue in caught.value.issues}


def test_a_minimal_wrench_gets_open_protocol_defaults() -> None:
    config = parse_config(HEAD + '[[wrenches]]\nname = "w1"\nhost = "10.0.0.5"\n', "t.toml")
    (w,) = config.wrenches
    assert (w.protocol, w.manufacturer, w.port, w.keepalive_ms, w.revision) == (
        WrenchProtocol.OPEN_PROTOCOL, WrenchManufacturer.ATLAS_COPCO, 4545, 10_000, 3)
    assert w.enabled and w.default_pset is None and w.psets == () and w.pset(1) is None


def test_torque_settings_are_read_with_their_limits() -> None:
    config = parse_config(HEAD + textwrap.dedent("""
        [[wrenches]]
        name = "w1"
        default_pset = 2

          [[wrenches.psets]]
          number = 2
          name = "M8"
          torque_min_nm = 22          # integers are torques too
          torque_max_nm = 27.5
          torque_target_nm = 25
          angle_max = 180
          batch_size = 6
        """), "t.toml")
    pset = config.wrenches[0].pset(2)
    assert pset == WrenchPset(number=2, name="M8", torque_min_nm=22.0, torque_max_nm=27.5,
                              torque_target_nm=25.0, angle_max=180, batch_size=6)


def test_every_wrench_mistake_is_reported_with_its_key() -> None:
    found = issues("""
        [[wrenches]]
        name = "a"
        protocol = "PFCS"

        [[wrenches]]
        name = "a"
        port = 4546
        revision = 4
        protocol = "SERIAL"

        [[wrenches]]
        name = "c"
        port = 4545

          [[wrenches.psets]]
          number = 1
          torque_min_nm = 10.0
          torque_max_nm = 9.0
          torque_target_nm = 9.5
          angle_min = 90
          angle_max = 30

          [[wrenches.psets]]
          number = 1
          torque_min_nm = 1
          torque_max_nm = 2
          torque_target_nm = 3

          [[wrenches.psets]]
          number = 1000
          torque_min_nm = -1
          torque_max_nm = 2
          torque_target_nm = 1
        """)
    assert "not supported by Takt (supported: OPEN_PROTOCOL)" in found["wrenches[0].protocol"]
    assert "expected one of: OPEN_PROTOCOL, PFCS, TOOLSNET" in found["wrenches[1].protocol"]
    assert "wrenches[1].revision" in found
    assert "duplicate wrench name 'a'" in found["wrenches[1].name"]
    assert "127.0.0.1:4545 is already the wrench at wrenches[0]" in found["wrenches[2].port"]
    assert "must lie within" in found["wrenches[2].psets[0].torque_target_nm"]
    assert "angle_min (90) must not exceed angle_max (30)" in found[
        "wrenches[2].psets[0].angle_min"]
    assert "must lie within" in found["wrenches[2].psets[1].torque_target_nm"]
    assert "duplicate pset number 1" in found["wrenches[2].psets[1].number"]
    assert {"wrenches[2].psets[2].number", "wrenches[2].psets[2].torque_min_nm"} <= set(found)


def test_at_most_ten_wrenches_and_the_sim_port_is_checked() -> None:
    eleven = "".join(f'[[wrenches]]\nname = "w{i}"\nport = {5000 + i}\n' for i in range(11))
    assert "at most 10 wrenches" in issues(eleven)["wrenches[10]"]
    clash = issues("[server]\nport = 4545\n[sim]\nwrench = true\n")
    assert clash["sim.wrench_port"] == "port 4545 is already used by server.port"
    parse_config(HEAD + "[server]\nport = 4545\n[sim]\nwrench = false\n", "t.toml")


def test_torque_settings_bodies_are_checked_like_the_config() -> None:
    raw: dict[str, Any] = {"wrenches": [
        {"wrench": "w1", "psets": [
            {"number": 1, "torque_min_nm": 1, "torque_max_nm": 2, "torque_target_nm": 1.5},
            {"number": 1, "torque_min_nm": 1, "torque_max_nm": 2, "torque_target_nm": 9}]},
        {"wrench": "w1"}, {"wrench": "W 2"}]}
    settings, problems = check_table(raw, TorqueSettings)
    assert settings is None
    assert {key for key, _ in problems} == {
        "wrenches[0].psets[1].number", "wrenches[0].psets[1].torque_target_nm",
        "wrenches[1].wrench", "wrenches[2].wrench"}
    ok, none = check_table({"wrenches": [{"wrench": "w1"}]}, TorqueSettings)
    assert none == [] and ok.wrenches[0].psets == ()


hundredths = st.decimals(min_value=0, max_value=Decimal("9999.99"), places=2)


@given(hundredths)
def test_a_torque_in_nm_becomes_the_hundredths_the_controller_sends(value: Decimal) -> None:
    # 9.95 is 9.949999... as a float: the conversion must still give 995, not 994.
    assert cnm(float(value)) == int(value * 100)


@given(low=hundredths, span=hundredths, torque=st.integers(0, 999_999),
       angle=st.integers(0, 99_999), angle_min=st.none() | st.integers(0, 500),
       angle_max=st.none() | st.integers(0, 500))
def test_takt_flags_exactly_the_results_outside_its_limits(
        low: Decimal, span: Decimal, torque: int, angle: int, angle_min: int | None,
        angle_max: int | None) -> None:
    high = min(low + span, Decimal("9999.99"))
    pset = WrenchPset(number=1, torque_min_nm=float(low), torque_max_nm=float(high),
                      torque_target_nm=float(low), angle_min=angle_min, angle_max=angle_max)
    inside = (int(low * 100) <= torque <= int(high * 100)
              and (angle_min is None or angle >= angle_min)
              and (angle_max is None or angle <= angle_max))
    reason = check_tightening(pset, torque, angle)
    assert (reason is None) == inside
    if reason is not None:
        assert "torque" in reason or "angle" in reason


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@given(st.sampled_from(["result", "batch", "state", "x", ""]), st.text(max_size=8),
       st.dictionaries(st.sampled_from(["ok", "flag", "torque_nm", "tightening_id", "pset",
                                        "complete", "size", "angle"]), json_values) | json_values)
def test_wrench_events_never_break_the_journal(what: str, name: str, data: Any) -> None:
    entry = classify(f"device.wrench.{name}.{what}", f"wrench:{name}", data)
    if entry is not None:
        assert entry.category is Category.WRENCH and isinstance(entry.message, str)


def test_a_nok_tightening_is_a_warning_and_an_ok_one_no_entry() -> None:
    nok = classify("device.wrench.w1.result", "wrench:w1", {
        "ok": False, "tightening_id": 7, "pset": 2, "torque_nm": 8.5, "torque_status": "low",
        "angle": 40, "angle_status": "ok", "flag": None})
    assert nok is not None and (nok.severity, nok.category) == (Severity.WARNING,
                                                                Category.WRENCH)
    assert nok.message == ("w1: NOK tightening 7 of pset 2: torque 8.5 N·m (low), "
                           "angle 40° (ok)")
    assert classify("device.wrench.w1.result", "wrench:w1", {"ok": True}) is None
    batch = classify("device.wrench.w1.batch", "wrench:w1", {"complete": True, "size": 4,
                                                              "pset": 1})
    assert batch is not None and batch.severity is Severity.INFO and "of 4" in batch.message
