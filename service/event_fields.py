"""The field types of the input contract, each checked once and published the same way.

Every type here validates a JSON value with one regular expression and publishes that
same expression as the JSON Schema ``pattern`` (formats such as ``date-time`` are only
annotations to many validators, so they are never the only check). The expressions keep
to what Python's ``re`` and ECMA-262 (the dialect of JSON Schema) read alike: explicit
character classes (``[0-9]``, never ``\\d`` or ``\\s``, whose meanings differ), groups,
alternation and look-ahead, anchored as a whole. ``tests/unit/test_event_contract.py``
holds the schema and the model to the same verdict on generated and mutated documents.

Python-side construction (tests, tools, the policy file's thresholds) may also pass the
converted value itself (a ``Decimal``, an aware ``datetime``) and, for decimals, a number;
only JSON input is the wire contract, and there the pattern alone decides.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

T = TypeVar("T")

# Years 0001-9999 (Python's range); the day exists in its month, 29 February in leap years.
_DATE = (
    r"(?!0000)(?:[0-9]{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    r"|(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)-02-29)"
)
# Seconds are required (RFC 3339); up to nine fraction digits (Java's Instant writes
# nanoseconds), kept to the microsecond; the offset is required: a time without one is
# ambiguous by hours.
_TIME = (
    r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
TIMESTAMP_PATTERN = _DATE + _TIME
MONEY_PATTERN = r"[0-9]{1,10}(?:\.[0-9]{1,4})?"
# At least one non-zero digit: zero units or a zero minimum mean nothing.
POSITIVE_QUANTITY_PATTERN = r"(?=[0-9.]*[1-9])[0-9]{1,8}(?:\.[0-9]{1,4})?"
POSITIVE_AMOUNT_PATTERN = r"(?=[0-9.]*[1-9])" + MONEY_PATTERN
ZERO_AMOUNT_PATTERN = r"0{1,10}(?:\.0{1,4})?"
ID_PATTERN = r"[1-9][0-9]{0,17}"
ID_MAXIMUM = 999_999_999_999_999_999  # 18 digits: the pattern's reach, inside a long


def _refused(message: str) -> PydanticCustomError:
    # A custom error reads "occurred_at: must be ..." where ValueError would add "Value
    # error, " before every message a producer reads in a dead letter.
    return PydanticCustomError("contract", message)


def anchored(pattern: str) -> str:
    """``pattern`` as a JSON Schema ``pattern`` that must match the whole string."""
    return f"^(?:{pattern})$"


def _checked(
    pattern: str, convert: Callable[[str], T], what: str, native: type[T] | None = None
) -> Callable[[object], T]:
    compiled = re.compile(pattern)

    def check(value: object) -> T:
        if native is not None and isinstance(value, native):
            if compiled.fullmatch(_as_text(value)) is None:
                raise _refused(f"must be {what}")
            return value
        if not isinstance(value, str):
            raise _refused(f"must be a string: {what}")
        if compiled.fullmatch(value) is None:
            raise _refused(f"must be {what}")
        return convert(value)

    return check


def _as_text(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else "NaN"
    return str(value)


@dataclass(frozen=True, slots=True, eq=False)
class Checked:
    """Pydantic metadata: validate with ``check``, publish ``schema`` for what is read.

    ``Annotated[Decimal, money_text(...)]`` and the like: one object carries the check and
    its JSON Schema, so the two are written side by side.
    """

    check: Callable[[object], Any]
    schema: dict[str, Any]
    """The JSON Schema of what is read (validation mode)."""
    serialized: dict[str, Any]
    """The JSON Schema of what is written (serialization mode)."""
    to_json: Callable[[Any], Any] | None = None
    """Writes the value for JSON output; ``None``: pydantic's own serialization."""
    from_python: Callable[[object], object] | None = None
    """Applied before ``check`` to Python-side input only (never to JSON)."""

    def _validate(self, value: object, info: core_schema.ValidationInfo) -> Any:
        if self.from_python is not None and info.mode == "python":
            value = self.from_python(value)
        return self.check(value)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        serialization = (
            core_schema.plain_serializer_function_ser_schema(self.to_json, when_used="json")
            if self.to_json is not None
            else None
        )
        return core_schema.with_info_plain_validator_function(
            self._validate, serialization=serialization
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(self.schema if handler.mode == "validation" else self.serialized)


def decimal_text(pattern: str, what: str, description: str) -> Checked:
    """A decimal read only from a string matching ``pattern``."""
    return Checked(
        _checked(pattern, Decimal, what, Decimal),
        {"type": "string", "pattern": anchored(pattern), "description": description},
        {"type": "string"},
        lambda value: format(value, "f"),
        _number_as_decimal,
    )


def _number_as_decimal(value: object) -> object:
    # A YAML policy writes `minimum: 49.99`; JSON input never reaches this (JSON mode).
    # str() of a float is its shortest round-trip form: 49.99, not 49.99000000000000198.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


Money = Annotated[
    Decimal,
    decimal_text(
        MONEY_PATTERN,
        "a decimal string of at most 10 digits and 4 decimals, such as 1500.00",
        "A non-negative decimal string: at most 10 digits before the point and 4 after "
        '("1500.00", "0"). JSON numbers are refused: money is never a float.',
    ),
]
"""Money: a non-negative decimal string."""
Quantity = Annotated[
    Decimal,
    decimal_text(
        POSITIVE_QUANTITY_PATTERN,
        "a positive decimal string of at most 8 digits and 4 decimals, such as 2 or 0.5",
        'A positive decimal string: at most 8 digits before the point and 4 after ("2", "0.5").',
    ),
]
"""Units: a positive decimal string."""
PositiveAmount = Annotated[
    Decimal,
    decimal_text(
        POSITIVE_AMOUNT_PATTERN,
        "a positive decimal string of at most 10 digits and 4 decimals",
        "A positive decimal string: at most 10 digits before the point and 4 after.",
    ),
]
"""A threshold's minimum: money or units, positive."""


def _aware(value: object) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _refused("must be a date-time with an offset")
        return value
    return _check_timestamp(value)


_TIMESTAMP_WHAT = (
    "an RFC 3339 date-time with seconds and an offset, such as 2026-11-20T10:15:00+01:00 "
    "or 2026-11-20T09:15:00Z"
)

# The pattern decides what is valid. Python 3.11's fromisoformat reads every shape it lets
# through (Z, offsets, up to nine fraction digits cut to six) as reading the parts by hand
# did, some twenty times faster.
_check_timestamp = _checked(TIMESTAMP_PATTERN, datetime.fromisoformat, _TIMESTAMP_WHAT)

Timestamp = Annotated[
    datetime,
    Checked(
        _aware,
        {
            "type": "string",
            "format": "date-time",
            "pattern": anchored(TIMESTAMP_PATTERN),
            "description": "RFC 3339 date-time with seconds and an offset (Z or +hh:mm); "
            "a fraction of up to 9 digits is kept to the microsecond. Unix times and "
            "times without an offset are refused.",
        },
        {"type": "string", "format": "date-time"},
        lambda value: value.isoformat(),
    ),
]
"""An instant: an RFC 3339 date-time string with an offset."""


def _positive_id(value: object) -> int:
    # bool is an int to Python and a different type to JSON.
    if isinstance(value, bool):
        raise _refused("must be a positive integer, not a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 12.0 is the integer 12 to JSON Schema too
    if isinstance(value, int):
        if not 1 <= value <= ID_MAXIMUM:
            raise _refused(f"must be between 1 and {ID_MAXIMUM}")
        return value
    if isinstance(value, str) and re.fullmatch(ID_PATTERN, value):
        return int(value)
    raise _refused(
        "must be a positive integer of at most 18 digits, as a JSON number or a string of "
        "digits without leading zeros"
    )


PositiveId = Annotated[
    int,
    Checked(
        _positive_id,
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": ID_MAXIMUM},
                {"type": "string", "pattern": anchored(ID_PATTERN)},
            ],
            "description": "A positive integer id of at most 18 digits: a JSON number, or a "
            "string of digits without leading zeros (for producers whose numbers are "
            "doubles); read as the number.",
        },
        {"type": "integer"},
    ),
]
"""Capillary's numeric ids: a JSON integer or a string of its digits."""


def matching(pattern: str, description: str, max_length: int | None = None) -> Checked:
    """A string that matches ``pattern`` whole, published with the same pattern."""
    check = _checked(pattern, str, f"a string matching {anchored(pattern)}")
    schema: dict[str, Any] = {"type": "string", "pattern": anchored(pattern)}
    if max_length is not None:
        schema["maxLength"] = max_length

    def within(value: object) -> str:
        text = check(value)
        # len() counts code points, as JSON Schema's maxLength does.
        if max_length is not None and len(text) > max_length:
            raise _refused(f"must be at most {max_length} characters")
        return text

    return Checked(within, {**schema, "description": description}, {"type": "string"})


def any_case_pattern(values: Iterable[str]) -> str:
    """A pattern for ``values`` in any mix of ASCII case.

    Spelt out letter by letter because Python's case folding reaches beyond ASCII
    (the dotless i upper-cases to ``I``) and ECMA's ``i`` flag is not part of JSON Schema.
    """

    def letters(value: str) -> str:
        return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in value)

    return "|".join(letters(value) for value in values)


def any_case(enum: type[StrEnum], description: str) -> Checked:
    """A member of ``enum`` named in any mix of ASCII case; read as the member."""
    values = [member.value for member in enum]
    pattern = any_case_pattern(values)
    what = "one of " + ", ".join(f"'{value}'" for value in values) + " (any case)"
    return Checked(
        _checked(pattern, lambda text: enum(text.upper()), what, enum),
        {"type": "string", "pattern": anchored(pattern), "description": description},
        {"type": "string", "enum": values},
        lambda member: member.value,
    )
