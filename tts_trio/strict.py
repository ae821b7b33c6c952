"""A strict cattrs converter for what clients send (JSON bodies, messages, engine configs).

cattrs' default hooks convert ``"5"`` to ``5`` and ``True`` to ``1``, which
would let a client's mistake pass silently; these hooks accept only the JSON
type the field declares (an integer also counts as a number), refuse NaN and
infinities, and the converter refuses unknown keys, so a typo fails loudly
with the field's name.

An integral float (``9043.0``) is an integer for an integer field: JSON has
one number type and JSON Schema, which the OpenAPI description is written
in, says ``9043.0`` is an integer, so clients that serialize every number as
a float (JavaScript after arithmetic, some JSON libraries) are not refused.
``9043.5`` still is.
"""

from __future__ import annotations

from typing import Any

import cattrs


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        got = repr(value) if isinstance(value, float) else type(value).__name__  # 9043.5 says more than "float"
        raise ValueError(f"expected an integer, got {got}")
    return value


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError("expected a finite number")
    return number


def _structure_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {type(value).__name__}")
    return value


def strict_converter() -> cattrs.Converter:
    """A new converter with the strict scalar hooks and unknown keys refused."""
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(bool, _structure_bool)
    return converter
