"""Takt value types <-> OPC-UA variants, checked through asyncua's own binary encoding."""

from __future__ import annotations

import math
import struct

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import variant_from_binary, variant_to_binary
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError
from drivers.opcua.values import (
    VALUE_TYPES,
    compatible,
    from_opcua,
    takt_type_for,
    to_variant,
    variant_for,
)

INT_RANGES = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
FLOAT32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]

IN_RANGE = {
    "bool": st.booleans(),
    **{name: st.integers(low, high) for name, (low, high) in INT_RANGES.items()},
    "float32": st.floats(width=32),
    "float64": st.floats(),
    "string": st.text(),
}


def over_the_wire(variant: ua.Variant) -> ua.Variant:
    """What the other end decodes from the bytes asyncua sends for variant."""
    return variant_from_binary(Buffer(variant_to_binary(variant)))


def same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("type_name", VALUE_TYPES)
@given(data=st.data())
def test_in_range_values_round_trip_over_the_wire(type_name: str, data: st.DataObject) -> None:
    value = data.draw(IN_RANGE[type_name])
    variant = to_variant(type_name, value)
    assert variant.VariantType is variant_for(type_name)
    assert same(from_opcua(type_name, over_the_wire(variant)), value)


@given(value=st.floats(min_value=-FLOAT32_MAX, max_value=FLOAT32_MAX))
def test_float32_is_rounded_once_to_what_the_wire_carries(value: float) -> None:
    variant = to_variant("float32", value)
    assert variant.Value == struct.unpack("<f", struct.pack("<f", value))[0]
    assert from_opcua("float32", over_the_wire(variant)) == variant.Value


@pytest.mark.parametrize("type_name", list(INT_RANGES))
@given(data=st.data())
def test_out_of_range_integers_are_refused(type_name: str, data: st.DataObject) -> None:
    low, high = INT_RANGES[type_name]
    value = data.draw(st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)))
    with pytest.raises(ValueError, match=f"does not fit {type_name}"):
        to_variant(type_name, value)
    with pytest.raises(FrameError, match="out of range"):
        from_opcua(type_name, value)


@given(value=st.floats(min_value=FLOAT32_MAX * 1.0000001, allow_infinity=False))
def test_finite_floats_beyond_float32_are_refused(value: float) -> None:
    for signed in (value, -value):
        with pytest.raises(ValueError, match="does not fit float32"):
            to_variant("float32", signed)


def test_out_of_range_message_names_value_type_and_range() -> None:
    with pytest.raises(ValueError, match=r"^70000 does not fit uint16 \(0\.\.65535\)$"):
        to_variant("uint16", 70000)


@pytest.mark.parametrize(
    ("type_name", "value"),
    [
        ("bool", 1),
        ("bool", "true"),
        ("int16", True),
        ("int32", 1.5),
        ("uint32", "7"),
        ("float64", False),
        ("float32", "1.0"),
        ("string", 5),
        ("float64", 10**400),
    ],
)
def test_wrong_python_types_are_refused(type_name: str, value: object) -> None:
    with pytest.raises(ValueError, match=type_name):
        to_variant(type_name, value)


def test_unknown_type_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown value type 'int8'.*uint16"):
        variant_for("int8")


@pytest.mark.parametrize(
    ("type_name", "raw", "match"),
    [
        ("uint16", ua.Variant(5, ua.VariantType.Int32), "got Int32, want UInt16"),
        ("bool", ua.Variant([True], ua.VariantType.Boolean), "array"),
        ("int32", ua.Variant(None, ua.VariantType.Null), "null"),
        ("bool", 1, "want a bool"),
        ("int16", 2.0, "want an integer"),
        ("float64", "2.5", "want a number"),
        ("string", b"abc", "want a string"),
        ("float32", 1e300, "out of range for float32"),
    ],
)
def test_values_a_device_should_not_send_are_frame_errors(
    type_name: str, raw: object, match: str
) -> None:
    with pytest.raises(FrameError, match=match):
        from_opcua(type_name, raw)


def test_null_string_reads_as_empty() -> None:
    assert from_opcua("string", ua.Variant(None, ua.VariantType.String)) == ""


def test_integers_come_back_as_floats_for_float_types() -> None:
    assert same(from_opcua("float64", 3), 3.0)


@pytest.mark.parametrize("type_name", VALUE_TYPES)
def test_compatible_only_with_its_own_builtin(type_name: str) -> None:
    matching = [vt for vt in ua.VariantType if compatible(type_name, vt)]
    assert matching == [variant_for(type_name)]
    assert takt_type_for(variant_for(type_name)) == type_name


def test_types_takt_has_no_name_for() -> None:
    assert takt_type_for(ua.VariantType.Int64) is None
    assert takt_type_for(ua.VariantType.DateTime) is None
