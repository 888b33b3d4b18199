"""Result: Ok(value) and Error(exception), the outcome of a finished call."""

from __future__ import annotations

import attrs
import pytest

from stent.result import Error, Ok, Result


def test_ok_unwrap_returns_the_value() -> None:
    """Ok.unwrap() gives the value."""
    assert Ok(5).unwrap() == 5


def test_error_unwrap_raises_the_error() -> None:
    """Error.unwrap() raises the very exception it holds."""
    exc = ValueError("bad")
    with pytest.raises(ValueError) as caught:
        Error(exc).unwrap()
    assert caught.value is exc


def test_error_unwrap_raises_base_exceptions_too() -> None:
    """An Error holding a BaseException such as KeyboardInterrupt raises it as is."""
    with pytest.raises(KeyboardInterrupt):
        Error(KeyboardInterrupt()).unwrap()


def test_unwrap_or_gives_the_value_or_the_default() -> None:
    """unwrap_or returns Ok's value, or the default for an Error."""
    assert Ok(1).unwrap_or(2) == 1
    assert Error(ValueError()).unwrap_or(2) == 2


def test_ok_with_none_value_is_still_ok() -> None:
    """Ok(None) is a success and unwraps to None, not the default."""
    assert Ok(None).unwrap_or("default") is None
    assert Ok(None)


def test_map_applies_to_ok_only() -> None:
    """map transforms Ok's value and leaves an Error untouched without calling the function."""
    assert Ok(2).map(lambda v: v * 10) == Ok(20)
    error = Error(ValueError("x"))

    def never(value: object) -> object:
        raise AssertionError("map called fn on an Error")

    assert error.map(never) is error


def test_map_lets_the_functions_exception_propagate() -> None:
    """An exception raised by map's function is not captured into an Error."""
    with pytest.raises(ZeroDivisionError):
        Ok(0).map(lambda v: 1 / v)


def test_flat_map_chains_results() -> None:
    """flat_map returns the function's own Result for Ok and skips it for Error."""
    assert Ok(4).flat_map(lambda v: Ok(v + 1)) == Ok(5)
    failure = Error(KeyError("k"))
    assert Ok(4).flat_map(lambda v: failure) is failure
    error = Error(ValueError("x"))
    assert error.flat_map(lambda v: Ok(v)) is error


def test_flat_map_refuses_a_function_not_returning_a_result() -> None:
    """flat_map raises TypeError when the function returns a plain value."""
    with pytest.raises(TypeError, match="returning Ok or Error"):
        Ok(1).flat_map(lambda v: v)  # type: ignore[arg-type, return-value]


def test_truthiness_says_success() -> None:
    """Ok is truthy even for falsy values, and Error is falsy."""
    assert Ok(0)
    assert Ok("")
    assert Ok(False)
    assert not Error(ValueError())


def test_is_ok_and_is_error_properties() -> None:
    """is_ok and is_error are properties that say which case a Result is."""
    assert Ok(1).is_ok and not Ok(1).is_error
    assert Error(ValueError()).is_error and not Error(ValueError()).is_ok


def test_ok_equality_compares_values() -> None:
    """Ok values are equal when their values are, and never equal to an Error or a bare value."""
    assert Ok([1, 2]) == Ok([1, 2])
    assert Ok(1) != Ok(2)
    assert Ok(1) != 1
    assert Ok(ValueError) != Error(ValueError())


def test_error_equality_compares_exception_type_and_args() -> None:
    """Errors holding exceptions of the same type and args are equal; different ones are not."""
    assert Error(ValueError("x", 1)) == Error(ValueError("x", 1))
    assert Error(ValueError("x")) != Error(ValueError("y"))
    assert Error(ValueError("x")) != Error(KeyError("x"))
    exc = ValueError("same")
    assert Error(exc) == Error(exc)


def test_equal_results_hash_equal() -> None:
    """Equal Ok and Error values have equal hashes and work in sets, even with unhashable args."""
    assert {Ok(1), Ok(1)} == {Ok(1)}
    assert len({Error(ValueError([1])), Error(ValueError([1]))}) == 1


def test_repr_shows_the_contents() -> None:
    """repr shows the case and what it holds."""
    assert repr(Ok("a")) == "Ok('a')"
    assert repr(Error(ValueError("bad"))) == "Error(ValueError('bad'))"


def test_results_are_frozen() -> None:
    """Ok and Error cannot be changed after they are made."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Ok(1).value = 2  # type: ignore[misc]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        Error(ValueError()).error = KeyError()  # type: ignore[misc]


def test_error_requires_an_exception_instance() -> None:
    """Error refuses anything that is not an exception instance."""
    with pytest.raises(TypeError, match="exception instance"):
        Error("failed")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Error(ValueError)  # type: ignore[arg-type]


def test_pattern_matching_destructures_both_cases() -> None:
    """match/case can pull the value out of Ok and the exception out of Error."""

    def describe(result: Result[int]) -> str:
        match result:
            case Ok(value):
                return f"ok {value}"
            case Error(error):
                return f"error {error}"
        return "unreachable"

    assert describe(Ok(3)) == "ok 3"
    assert describe(Error(ValueError("x"))) == "error x"


def test_result_alias_is_generic() -> None:
    """Result[T] is the union of Ok[T] and Error."""
    assert Result[int] == Ok[int] | Error  # type: ignore[misc]  # mypy allows aliases in annotations only
