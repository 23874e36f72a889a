"""User-facing errors: one clear line and a non-zero exit, never a traceback dump; and the two checks
that every configuration group makes, each naming the override key to fix."""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable, TypeVar

F = TypeVar("F", bound=Callable)

EXIT_USAGE = 2


class BenchError(Exception):
    """An error caused by the user's input or environment, reported as one line."""


class ConfigError(BenchError):
    """A configuration value is invalid; the message names the override key."""


class DataError(BenchError):
    """A data file is missing, unreadable or malformed."""


def require_choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    """`value` if it is one of `allowed`, else a ConfigError naming `key`."""
    if value not in allowed:
        raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def require_positive_int(value: Any, key: str) -> None:
    """A ConfigError naming `key` unless `value` is an integer >= 1 (not a bool)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{key} must be a positive integer, got {value!r}")


def one_line(exc: BaseException) -> str:
    """Collapse an exception message to a single line."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def exit_on_user_error(main: F) -> F:
    """Run an entry point, turning BenchError into `error: ...` on stderr and exit code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except BenchError as exc:
            print(f"error: {one_line(exc)}", file=sys.stderr)
            sys.exit(EXIT_USAGE)

    return wrapper  # type: ignore[return-value]
