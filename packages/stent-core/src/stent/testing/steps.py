"""What a test sees of an execution: each of its tasks, decoded, in journal order.

:func:`steps_of` lists the root task and then every step of its journal, depth first (a child call's own steps
follow it), each as a :class:`Step` with its name, state, attempt and decoded result or error.  Use it to check
what a workflow did, not only what it returned: that a payment was retried twice, that a sleep happened, that a
compensation ran.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import attrs

from stent.engine.durable import lookup_function
from stent.executor import Stent
from stent.model import TaskKind, TaskRecord


@attrs.frozen
class Step:
    """One task of an execution, as a test sees it.

    ``name`` is the durable function's registered name (``"module:function"``), ``"stent.sleep"`` for a durable
    sleep, or ``"stent.signal:<name>"`` for a signal wait.  ``kind`` is ``"call"``, ``"sleep"`` or ``"signal"``;
    ``state`` is the task's state (``"completed"``, ``"failed"``, ``"pending"``, ``"suspended"``...);
    ``attempts`` is the attempt it is on (1 unless its retry policy ran it again).  ``result`` is the decoded
    return value (a sleep's is its wake time, a signal wait's the payload it received) and ``error`` the decoded
    exception of a failed task.  ``step`` is its position in its parent's journal (``None`` for the root), and
    ``parent_attempt`` the parent's attempt that recorded it (a retried parent starts a fresh journal).
    """

    name: str
    kind: str
    state: str
    attempts: int
    result: Any
    error: BaseException | None
    step: int | None
    parent_attempt: int | None
    task_id: str
    parent_task_id: str | None


async def steps_of(executor: Stent, execution_id: str) -> list[Step]:
    """The execution's root task, then each step of its journal, depth first, oldest attempt first."""
    await executor.state_of(execution_id)  # a clear ExecutionNotFound for an unknown id
    tasks = await executor.backend.list_execution_tasks(execution_id)
    children: dict[str | None, list[TaskRecord]] = defaultdict(list)
    for task in tasks:
        children[task.parent_task_id].append(task)
    ordered: list[TaskRecord] = []

    def walk(task: TaskRecord) -> None:
        ordered.append(task)
        for child in sorted(children[task.task_id], key=lambda t: (t.parent_attempt or 0, t.step or 0)):
            walk(child)

    for root in children[None]:
        walk(root)
    return [_step(executor, task) for task in ordered]


def _step(executor: Stent, task: TaskRecord) -> Step:
    if task.kind is TaskKind.SLEEP:
        result: Any = None if task.result is None else datetime.fromisoformat(task.result)  # stored as ISO text
    else:
        fn = lookup_function(task.function) if task.kind is TaskKind.CALL else None
        result = executor.codec.decode_result(fn, task.result)
    return Step(
        name=task.function,
        kind=task.kind.value,
        state=task.state.value,
        attempts=task.attempt,
        result=result,
        error=executor.codec.decode_error(task.error) if task.error else None,
        step=task.step,
        parent_attempt=task.parent_attempt,
        task_id=task.task_id,
        parent_task_id=task.parent_task_id,
    )
