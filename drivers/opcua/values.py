"""Takt value types <-> OPC-UA variants: range checks out, normalisation and checks in (pure)."""

from __future__ import annotations

import math
import struct
from typing import TypeAlias

from asyncua import ua

from drivers.errors import FrameError

__all__ = [
    "VALUE_TYPES",
    "Value",
    "compatible",
    "from_opcua",
    "takt_type_for",
    "to_variant",
    "variant_for",
]

Value: TypeAlias = bool | int | float | str

_VARIANT: dict[str, ua.VariantType] = {
    "bool": ua.VariantType.Boolean,
    "int16": ua.VariantType.Int16,
    "uint16": ua.VariantType.UInt16,
    "int32": ua.VariantType.Int32,
    "uint32": ua.VariantType.UInt32,
    "float32": ua.VariantType.Float,
    "float64": ua.VariantType.Double,
    "string": ua.VariantType.String,
}
_TAKT_TYPE = {variant: name for name, variant in _VARIANT.items()}
VALUE_TYPES: tuple[str, ...] = tuple(_VARIANT)

_INT_RANGE = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
}
_FLOAT32 = struct.Struct("<f")


def variant_for(type_name: str) -> ua.VariantType:
    """The OPC-UA built-in type that carries a Takt value type."""
    try:
        return _VARIANT[type_name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown value type {type_name!r} (one of: {', '.join(VALUE_TYPES)})"
        ) from None


def takt_type_for(variant_type: ua.VariantType) -> str | None:
    """The Takt value type for an OPC-UA built-in type, or None when Takt has none."""
    return _TAKT_TYPE.get(variant_type)


def compatible(type_name: str, variant_type: ua.VariantType) -> bool:
    """True when a node holding variant_type can be bound as type_name (the types match)."""
    return variant_for(type_name) is variant_type


def to_variant(type_name: str, value: object) -> ua.Variant:
    """Check value against the type and wrap it; raises ValueError saying what does not fit."""
    variant_type = variant_for(type_name)
    if type_name == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"bool needs True or False, not {value!r}")
        return ua.Variant(value, variant_type)
    if type_name == "string":
        if not isinstance(value, str):
            raise ValueError(f"string needs a str, not {value!r}")
        return ua.Variant(value, variant_type)
    if type_name in _INT_RANGE:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{type_name} needs an integer, not {value!r}")
        low, high = _INT_RANGE[type_name]
        if not low <= value <= high:
            raise ValueError(f"{value} does not fit {type_name} ({low}..{high})")
        return ua.Variant(value, variant_type)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refused(f"{type_name} needs a number, not {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"{value} does not fit {type_name}") from None
    if type_name == "float32":
        # Rounded here so the value a caller sets is the value that comes back.
        number = _round_float32(number, f"{value!r} does not fit float32")
    return ua.Variant(number, variant_type)


def from_opcua(type_name: str, raw: object) -> Value:
    """Normalise a value (or a ua.Variant) from the server; FrameError when it is not type_name."""
    variant_type = variant_for(type_name)
    if isinstance(raw, ua.Variant):
        if raw.is_array or isinstance(raw.Value, list):
            raise FrameError(f"got an array, want one {type_name}")
        if raw.VariantType is not variant_type and raw.VariantType is not ua.VariantType.Null:
            raise FrameError(f"got {raw.VariantType.name}, want {variant_type.name} ({type_name})")
        raw = raw.Value
    if raw is None:
        if type_name == "string":
            return ""  # a null String is how OPC-UA says "empty"
        raise FrameError(f"got no value (null), want {type_name}")
    if type_name == "bool":
        if not isinstance(raw, bool):
            raise FrameError(f"got {raw!r}, want a bool")
        return raw
    if type_name == "string":
        if not isinstance(raw, str):
            raise FrameError(f"got {raw!r}, want a string")
        return raw
    if type_name in _INT_RANGE:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise FrameError(f"got {raw!r}, want an integer ({type_name})")
        low, high = _INT_RANGE[type_name]
        if not low <= raw <= high:
            raise FrameError(f"{raw} is out of range for {type_name} ({low}..{high})")
        return raw
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise FrameError(f"got {raw!r}, want a number ({type_name})")
    try:
        number = float(raw)
    except OverflowError:
        raise FrameError(f"{raw} is out of range for {type_name}") from None
    if type_name == "float32":
        try:
            return _round_float32(number, f"{raw!r} is out of range for float32")
        except ValueError as exc:
            raise FrameError(str(exc)) from None
    return number


def _refused(message: str) -> ValueError:
    # ValueError (not TypeError) for every refusal, so callers handle bad values in one place.
    return ValueError(message)


def _round_float32(number: float, message: str) -> float:
    # struct rounds to nearest float32 but raises on finite values beyond its range.
    if math.isnan(number) or math.isinf(number):
        return number
    try:
        return float(_FLOAT32.unpack(_FLOAT32.pack(number))[0])
    except OverflowError:
        raise ValueError(message) from None
