"""Misuse of the public API that mypy must report: each ``# E: code`` marks an error mypy gives on that line.

Not a pytest module: ``test_typing.py`` runs mypy over this file and compares the errors with the markers, both
ways (a missing error means a durable function lost its signature; an extra one means the API got stricter).
"""

from stent import Stent


@Stent.durable
async def greet(name: str, times: int = 1) -> str:
    return name * times


@Stent.durable(queue="mail")
async def count(text: str) -> int:
    return len(text)


async def misuse() -> tuple[int, list[int]]:
    await greet(42)  # E: arg-type
    await greet("ada", times="twice")  # E: arg-type
    await count(b"bytes")  # E: arg-type
    await greet()  # E: call-arg
    number: int = await greet("ada")  # E: assignment
    numbers: list[int] = await greet.map(["ada"])  # E: assignment
    return number, numbers


@Stent.durable  # E: arg-type
def not_async(number: int) -> int:
    return number


@Stent.durable(queu="mail")  # E: call-overload untyped-decorator
async def misspelt_option() -> None:
    return None
