"""Bytes to a typed event, or a dead letter that says exactly what is wrong."""

from __future__ import annotations

from pydantic import ValidationError

from service.events import ReturnEvent
from service.pipeline.records import DeadLetter, Record

_MAX_DETAILS = 20


def validate(record: Record) -> ReturnEvent | DeadLetter:
    """Parse one record. Never raises: anything that is not a valid event is a dead letter."""
    if not record.value:
        return DeadLetter(record, reason="empty message: no event in the value", error_type="empty")
    try:
        return ReturnEvent.model_validate_json(record.value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        if errors and errors[0]["type"] == "json_invalid":
            return DeadLetter(
                record, reason=f"not JSON: {errors[0]['msg']}", error_type="json_invalid"
            )
        details = field_errors(exc)[:_MAX_DETAILS]
        more = len(errors) - len(details)
        if more > 0:
            details.append(f"... and {more} more")
        return DeadLetter(
            record,
            reason=f"not a valid return event: {len(errors)} error(s); first: {details[0]}",
            error_type="invalid_event",
            details=details,
        )


def field_errors(exc: ValidationError) -> list[str]:
    """One ``<field path>: <message>`` line per error: no input echoed, no links."""
    return [
        f"{'.'.join(str(part) for part in err['loc']) or '(root)'}: {err['msg']}"
        for err in exc.errors(include_url=False, include_input=False)
    ]
