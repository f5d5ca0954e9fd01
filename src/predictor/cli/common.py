"""What every `predictor` command shares: domain errors shown as one clear line, never a traceback; times."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from predictor_core import PredictorError

__all__ = ["domain_errors", "when"]

F = TypeVar("F", bound=Callable[..., Any])


def domain_errors(func: F) -> F:
    """Show domain errors (refusals, a database down, a model not found) as one message, exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PredictorError as exc:
            raise click.ClickException(f"{type(exc).__name__}: {' '.join(str(exc).split())}") from exc

    return wrapper  # type: ignore[return-value]


def when(value: str | None) -> dt.datetime | None:
    """An ISO date or datetime from the command line; naive ones are UTC."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO date or datetime (e.g. 2026-12-01T12:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
