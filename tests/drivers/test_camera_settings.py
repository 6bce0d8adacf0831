"""Camera settings without a camera: seed 000 names <-> Takt's keys <-> pylon features, the
checks against a device's ranges (each refusal names the field and the valid range), and the
static config rules of `[[cameras]]`."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.camera_config import (
    LIVE_FIELDS,
    SEED_FIELDS,
    CameraConfig,
    active_camera,
    normalize_changes,
)
from controller.config import ConfigError, parse_config
from drivers.pylon.settings import (
    FEATURES,
    Choices,
    DeviceRanges,
    FloatRange,
    IntRange,
    PylonSettings,
    SettingsError,
    check_settings,
    describe,
    merge,
    resolve_pixel_format,
    settings_from_mapping,
)

# What the pylon emulator reports (read from its nodes), with a 16-pixel width step as a real
# sensor has, to exercise increments.
RANGES = DeviceRanges(features={
    "user_set": Choices(("Default", "UserSet1")),
    "pixel_format": Choices(("Mono8", "BGR8Packed", "RGB8Packed", "BayerRG8")),
    "width": IntRange(16, 4096, 16), "height": IntRange(1, 4096, 1),
    "offset_x": IntRange(0, 4080, 16), "offset_y": IntRange(0, 4095, 1),
    "reverse_x": None, "reverse_y": None,
    "exposure_auto": Choices(("Off", "Once", "Continuous")),
    "exposure_us": IntRange(1, 10_000_000, 1), "gain_db": FloatRange(0.0, 48.00000004),
    "max_gain_db": FloatRange(0.0, 48.00000004), "max_exposure_us": IntRange(1, 10_000_000, 1),
    "frame_rate": FloatRange(0.01, 5000.0),
}, sensor_width=4096, sensor_height=4096)


def test_seed_names_and_takt_names_map_to_the_same_features() -> None:
    by_seed = settings_from_mapping({"Width": 640, "OffsetX": 32, "ReverseX": 1,
                                     "PixelFormat": "Mono8", "MaxGain": 12,
                                     "MaxExposureTime": 20000, "AcquisitionFrameRate": 25})
    by_key = settings_from_mapping({"width": 640, "offset_x": 32, "reverse_x": True,
                                    "pixel_format": "Mono8", "max_gain_db": 12.0,
                                    "max_exposure_us": 20000, "frame_rate": 25.0})
    assert by_seed == by_key
    # The config's seed table and the driver's feature table agree on every live setting.
    for feature in FEATURES:
        assert feature.field in LIVE_FIELDS
        if feature.seed != feature.field:
            assert SEED_FIELDS[feature.seed] == feature.field


def test_a_value_out_of_the_camera_range_names_the_field_and_the_range() -> None:
    problems = check_settings(PylonSettings(width=100_000, gain_db=60.0, pixel_format="YUV"),
                              RANGES)
    by_field = {p.field: p for p in problems}
    assert set(by_field) == {"width", "gain_db", "pixel_format"}
    assert by_field["width"].valid == "16..4096 in steps of 16"
    assert "100000 is outside the camera's range 16..4096" in by_field["width"].message
    assert by_field["gain_db"].valid == "0..48"
    assert "'YUV' is not offered" in by_field["pixel_format"].message
    assert "Mono8, BGR8Packed" in by_field["pixel_format"].message
    [step] = check_settings(PylonSettings(width=640, offset_x=8), RANGES)
    assert step.field == "offset_x" and "8 is not a step of" in step.message


def test_an_offset_leaves_room_for_the_image() -> None:
    assert check_settings(PylonSettings(width=4000, offset_x=96), RANGES) == []
    [problem] = check_settings(PylonSettings(width=4000, offset_x=112), RANGES)
    assert (problem.field, problem.valid) == ("offset_x", "0..96 in steps of 16")


def test_a_feature_the_camera_lacks_is_not_supported() -> None:
    ranges = DeviceRanges(features={"width": IntRange(1, 100, 1)})
    [problem] = check_settings(PylonSettings(gain_db=3.0), ranges)
    assert problem.field == "gain_db" and "not supported by this camera" in problem.message


def test_explicit_values_above_their_limits_are_refused() -> None:
    fields = {p.field for p in check_settings(
        PylonSettings(gain_db=20.0, max_gain_db=10.0, exposure_us=9000, max_exposure_us=8000),
        RANGES)}
    assert fields == {"gain_db", "exposure_us"}


def test_pixel_formats_by_either_generation_name() -> None:
    assert resolve_pixel_format("RGB8Packed", ("RGB8", "Mono8")) == "RGB8"
    assert resolve_pixel_format("RGB8", ("RGB8Packed",)) == "RGB8Packed"
    assert resolve_pixel_format("Mono8", ("RGB8",)) == "Mono8"
    ranges = DeviceRanges(features={"pixel_format": Choices(("RGB8", "Mono8"))})
    assert check_settings(PylonSettings(pixel_format="RGB8Packed"), ranges) == []


def test_bad_types_are_refused_by_field() -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from_mapping({"Width": "wide", "ReverseX": 2, "Gain": float("nan"),
                               "Zoom": 3})
    assert {p.field for p in caught.value.problems} == {"width", "reverse_x", "gain_db", "Zoom"}


# ---- properties --------------------------------------------------------------------------------

_KEYS = st.sampled_from([*(f.field for f in FEATURES), *(f.seed for f in FEATURES), "Zoom",
                         "iso"]) | st.text(max_size=12)
_VALUES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | \
    st.lists(st.integers(), max_size=3) | st.dictionaries(st.text(max_size=4), st.integers(),
                                                          max_size=2)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=8))
def test_any_input_gives_settings_or_the_clear_error(data: dict[str, Any]) -> None:
    try:
        parsed = settings_from_mapping(data)
    except SettingsError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        return
    for problem in check_settings(parsed, RANGES):
        assert problem.field in {f.field for f in FEATURES} and problem.message


def _int_in(r: IntRange) -> st.SearchStrategy[int]:
    return st.integers(0, (r.max - r.min) // r.inc).map(lambda n: r.min + n * r.inc)


@st.composite
def valid_settings(draw: st.DrawFn) -> PylonSettings:
    width = draw(_int_in(IntRange(16, 4096, 16)))
    height = draw(st.integers(1, 4096))
    max_gain = draw(st.none() | st.floats(0, 48).map(lambda v: round(v, 2)))
    max_exposure = draw(st.none() | st.integers(1, 10_000_000))
    values = {
        "user_set": draw(st.none() | st.sampled_from(["Default", "UserSet1"])),
        "pixel_format": draw(st.none() | st.sampled_from(["Mono8", "RGB8Packed", "BayerRG8"])),
        "width": width, "height": height,
        "offset_x": draw(_int_in(IntRange(0, 4096 - width, 16))),
        "offset_y": draw(st.integers(0, 4096 - height)),
        "reverse_x": draw(st.none() | st.booleans()),
        "exposure_auto": draw(st.none() | st.sampled_from(["Off", "Once", "Continuous"])),
        "exposure_us": draw(st.none() | st.integers(1, max_exposure or 10_000_000)),
        "gain_db": draw(st.none() | st.floats(0, max_gain if max_gain is not None else 48)),
        "max_gain_db": max_gain, "max_exposure_us": max_exposure,
        "frame_rate": draw(st.none() | st.floats(0.01, 5000)),
    }
    return PylonSettings(**values)


@settings(max_examples=300, deadline=None)
@given(valid_settings())
def test_valid_settings_pass_and_round_trip_by_either_name(s: PylonSettings) -> None:
    assert check_settings(s, RANGES) == []
    plain = msgspec.to_builtins(s)
    assert settings_from_mapping(plain) == s
    seed = {next(f.seed for f in FEATURES if f.field == k): v for k, v in plain.items()}
    assert settings_from_mapping(seed) == s
    assert merge(PylonSettings(), s) == s and merge(s, PylonSettings()) == s


@given(st.integers(-5, 100), st.integers(-5, 100), st.integers(1, 16))
def test_describe_says_what_a_check_accepts(low: int, span: int, inc: int) -> None:
    r = IntRange(low, low + span, inc)
    ranges = DeviceRanges(features={"height": r})
    accepted = [v for v in range(low - 2, low + span + 3)
                if not check_settings(PylonSettings(height=v), ranges)]
    assert accepted == list(range(low, low + span + 1, inc))
    assert describe(r).startswith(f"{low}..{low + span}")


# ---- the static config -------------------------------------------------------------------------

_STATION = '[station]\nid = "t"\nname = "t"\n'


def _issues(cameras: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(_STATION + cameras, "t.toml")
    return {i.key: i.message for i in caught.value.issues}


def test_config_rules_catch_what_no_camera_could_run() -> None:
    issues = _issues("""
[[cameras]]
name = "top"
[[cameras]]
name = "top"
source = "folder"
[[cameras]]
name = "cv"
source = "opencv"
emulation = true
[[cameras]]
name = "emu"
emulation = true
serial = "1234"
gain_db = 20.0
max_gain_db = 10.0
exposure_auto = "Continuous"
exposure_us = 100
active = true
[[cameras]]
name = "emu2"
emulation = true
serial = "0815-0001"
active = true
width = 0
""")
    assert "device_user_name" in issues["cameras[0].device_user_name"]
    assert "duplicate camera name 'top'" in issues["cameras[1].name"]
    assert "image_path" in issues["cameras[1].image_path"]
    assert "capture_device" in issues["cameras[2].capture_device"]
    assert "source = 'pylon'" in issues["cameras[2].emulation"]
    assert "0815-0000" in issues["cameras[3].serial"]
    assert "above max_gain_db" in issues["cameras[3].gain_db"]
    assert "Continuous" in issues["cameras[3].exposure_us"]
    assert ">= 1" in issues["cameras[4].width"]


def test_the_active_camera_is_the_marked_one_else_the_first() -> None:
    config = parse_config(_STATION + """
[[cameras]]
name = "a"
emulation = true
[[cameras]]
name = "b"
emulation = true
serial = "0815-0001"
""", "t.toml")
    first = active_camera(config.cameras)
    assert first is not None and first.name == "a"
    marked = (config.cameras[0], msgspec.structs.replace(config.cameras[1], active=True))
    chosen = active_camera(marked)
    assert chosen is not None and chosen.name == "b"
    assert _issues("""
[[cameras]]
name = "a"
emulation = true
active = true
[[cameras]]
name = "b"
emulation = true
serial = "0815-0001"
active = true
""") == {"cameras[1].active": "only one camera can be active (a is)"}


def test_changes_by_seed_name_are_normalized() -> None:
    changes, sent_as, problems = normalize_changes(
        {"Width": 640, "ReverseY": 0, "AutoReconnect": False, "Zoomm": 1, "width": 5})
    assert changes == {"width": 640, "reverse_y": False, "auto_reconnect": False}
    assert sent_as["width"] == "Width"
    assert dict(problems) == {"Zoomm": "unknown camera setting 'Zoomm'",
                              "width": "given twice (as 'Width' and 'width')"}
    camera = msgspec.convert({"name": "x", "emulation": True, **changes}, CameraConfig)
    assert camera.width == 640 and camera.auto_reconnect is False
