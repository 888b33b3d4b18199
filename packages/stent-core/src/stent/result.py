"""The outcome of a finished call: ``Ok(value)`` or ``Error(exception)``.

Both are frozen values.  ``Ok`` is truthy and ``Error`` falsy, so ``if result:`` asks "did it succeed?";
``unwrap()`` gives the value or raises the error; ``match`` works on both (``case Ok(value):``,
``case Error(error):``).  ``Result[T]`` is the alias ``Ok[T] | Error`` for annotations; test membership with
``isinstance(x, (Ok, Error))``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import attrs

T = TypeVar("T")
U = TypeVar("U")
D = TypeVar("D")


@attrs.frozen(repr=False)
class Ok(Generic[T]):
    """A call that returned ``value``."""

    value: T

    @property
    def is_ok(self) -> Literal[True]:
        """Always True: this is a success."""
        return True

    @property
    def is_error(self) -> Literal[False]:
        """Always False: this is not a failure."""
        return False

    def unwrap(self) -> T:
        """Return the value."""
        return self.value

    def unwrap_or(self, default: object) -> T:
        """Return the value; ``default`` is used only by :class:`Error`."""
        return self.value

    def map(self, fn: Callable[[T], U]) -> Ok[U]:
        """Return ``Ok(fn(value))``; an exception ``fn`` raises propagates."""
        return Ok(fn(self.value))

    def flat_map(self, fn: Callable[[T], Result[U]]) -> Result[U]:
        """Return ``fn(value)``, which must itself be an ``Ok`` or an ``Error``."""
        result = fn(self.value)
        if not isinstance(result, (Ok, Error)):
            raise TypeError(f"flat_map expects a function returning Ok or Error, got {type(result).__name__}")
        return result

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"Ok({self.value!r})"


def _check_error(instance: Error, attribute: attrs.Attribute[BaseException], value: object) -> None:
    if not isinstance(value, BaseException):
        raise TypeError(f"Error holds an exception instance, got {type(value).__name__}: {value!r:.60}")


@attrs.frozen(repr=False, eq=False)
class Error:
    """A call that raised ``error``.

    Two Errors are equal when they hold the same exception, or exceptions of the same type with equal ``args``
    (exceptions themselves compare by identity, which would make a stored failure unequal to itself).
    """

    error: BaseException = attrs.field(validator=_check_error)

    @property
    def is_ok(self) -> Literal[False]:
        """Always False: this is a failure."""
        return False

    @property
    def is_error(self) -> Literal[True]:
        """Always True: this is a failure."""
        return True

    def unwrap(self) -> Any:
        """Raise the error."""
        raise self.error

    def unwrap_or(self, default: D) -> D:
        """Return ``default``."""
        return default

    def map(self, fn: Callable[[Any], Any]) -> Error:
        """Return this Error unchanged; ``fn`` is not called."""
        return self

    def flat_map(self, fn: Callable[[Any], Any]) -> Error:
        """Return this Error unchanged; ``fn`` is not called."""
        return self

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Error):
            return NotImplemented
        mine, theirs = self.error, other.error
        return mine is theirs or (type(mine) is type(theirs) and mine.args == theirs.args)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        # Consistent with __eq__: equal Errors hold exceptions of one type (args may be unhashable).
        return hash((Error, type(self.error)))

    def __repr__(self) -> str:
        return f"Error({self.error!r})"


Result: TypeAlias = Ok[T] | Error
"""``Ok[T] | Error``: the outcome of a call returning ``T``."""
