"""Run the Python examples of a Markdown page, so that every snippet of the docs is known to work.

The conventions (tests/docs/README.md says the same for doc writers):

* Every fenced block whose info string is ``python`` runs; ``bash``, ``text`` and the rest do not.
* The blocks of one page run in order, in one namespace, as if they were one module of the user's: the namespace
  is a real module (``stent_docs.<page>``) put in ``sys.modules`` while the page runs, so exceptions and durable
  functions defined on a page are importable the way they are from a user's own module.
* Top-level ``await`` is allowed (``ast.PyCF_ALLOW_TOP_LEVEL_AWAIT``); the page's blocks share one event loop.
  A block with no top-level ``await`` runs as plain code outside that loop, so ``asyncio.run(main())`` works in it.
* Each page runs in a fresh temporary working directory, so a relative path such as ``"app.db"`` in a snippet
  creates its file there, and the page starts with no current executor (``Stent.use``).
* A traceback points at the Markdown file and line of the failing statement.
* Directives are HTML comments (invisible once rendered) on the lines just above a fence:

  ``<!-- test: skip REASON -->``
      do not run this block; the reason is required (use it only for what needs a real external server).
  ``<!-- test: output -->``
      above a ``text`` block: that block is exactly what the closest python block above it prints.
  ``<!-- test: raises NAME -->``
      the block must raise NAME (an exception class from the page, from ``stent`` or a builtin).
  ``<!-- test: serve -->``
      the block serves until drained (``await executor.serve(...)``): the runner starts it, waits until each
      worker it starts is ready, drains that worker, and requires the block to end.
  ``<!-- test: xfail REASON -->``
      the block documents behaviour that the code does not have yet (REASON names the bug).  The page's own
      test skips it; a separate strict-xfail test runs the page up to and including it, so the day the bug is
      fixed that test fails and the mark must go.

Each page's checks live in its blocks (``assert result == ...``): a page passes when every block ran as its
directives say.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import linecache
import os
import re
import sys
import tempfile
import threading
import types
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

import stent
from stent import Stent
from stent.worker.lifecycle import WorkerLifecycle
from stent.worker.machine import LifecycleState

REPO = Path(__file__).resolve().parents[2]
BLOCK_TIMEOUT = 30.0  # seconds of real time any one block may take before the page fails

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)[^`]*$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*test:\s*(?P<name>[a-z-]+)\s*(?P<arg>.*?)\s*-->\s*$")
KNOWN_DIRECTIVES = {"skip", "output", "raises", "serve", "xfail"}


class SnippetError(AssertionError):
    """A page's block did not do what its directives say."""


@attrs.frozen
class Block:
    """One fenced block of a Markdown page."""

    path: Path
    language: str
    source: str
    line: int  # 1-based line of the first source line (after the opening fence)
    directives: tuple[tuple[str, str], ...] = ()
    heading: str = ""  # the closest heading above the block

    def directive(self, name: str) -> str | None:
        for key, arg in self.directives:
            if key == name:
                return arg
        return None

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.directives)

    @property
    def where(self) -> str:
        return f"{_display(self.path)}:{self.line}"


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def parse_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` with the directives written just above it."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending: list[tuple[str, str]] = []
    heading = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        directive = _DIRECTIVE.match(line)
        fence = _FENCE.match(line)
        if directive:
            name, arg = directive.group("name"), directive.group("arg")
            if name not in KNOWN_DIRECTIVES:
                raise SnippetError(
                    f"{_display(path)}:{i + 1}: unknown directive {name!r}; known: {sorted(KNOWN_DIRECTIVES)}"
                )
            if name in {"skip", "xfail", "raises"} and not arg:
                raise SnippetError(
                    f"{_display(path)}:{i + 1}: `test: {name}` needs an argument (a reason or a name)"
                )
            pending.append((name, arg))
        elif fence:
            marker = fence.group("fence")
            body: list[str] = []
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith(marker[0] * len(marker)):
                body.append(lines[j])
                j += 1
            if j == len(lines):
                raise SnippetError(f"{_display(path)}:{i + 1}: code fence never closed")
            blocks.append(
                Block(
                    path=path,
                    language=fence.group("info").lower(),
                    source="\n".join(body) + "\n",
                    line=i + 2,
                    directives=tuple(pending),
                    heading=heading,
                )
            )
            pending = []
            i = j
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
            pending = []
        elif line.strip() and pending:
            raise SnippetError(f"{_display(path)}:{i + 1}: a `test:` directive must sit right above a code fence")
        i += 1
    return blocks


def python_blocks(path: Path) -> list[Block]:
    return [b for b in parse_blocks(path) if b.language in {"python", "py"}]


def expected_outputs(path: Path) -> dict[int, str]:
    """For each python block (by line) followed by a ``<!-- test: output -->`` text block, that text."""
    outputs: dict[int, str] = {}
    last_python: Block | None = None
    for block in parse_blocks(path):
        if block.language in {"python", "py"}:
            last_python = block
        elif block.has("output"):
            if last_python is None:
                raise SnippetError(f"{block.where}: an output block needs a python block above it")
            outputs[last_python.line] = block.source
    return outputs


# -- running ---------------------------------------------------------------------------------------------------


class WorkerWatch:
    """Records every worker lifecycle created while installed (``Stent.create_worker_lifecycle`` is wrapped).

    ``created`` lists (executor, lifecycle, loop) in order; ``loop`` is the event loop the lifecycle was created
    on (``None`` outside one), so a test may drain a worker running on another thread.
    """

    def __init__(self) -> None:
        self.created: list[tuple[Stent, WorkerLifecycle, asyncio.AbstractEventLoop | None]] = []
        self.any_created = threading.Event()
        self._changed: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[WorkerWatch]:
        original = Stent.create_worker_lifecycle
        watch = self

        def recording(executor: Stent, name: str) -> WorkerLifecycle:
            lifecycle = original(executor, name)
            try:
                loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            watch.created.append((executor, lifecycle, loop))
            watch.any_created.set()
            if loop is not None and loop in watch._changed:
                watch._changed[loop].set()
            return lifecycle

        Stent.create_worker_lifecycle = recording  # type: ignore[method-assign]
        try:
            yield self
        finally:
            Stent.create_worker_lifecycle = original  # type: ignore[method-assign]

    def changed(self) -> asyncio.Event:
        """An event set when a lifecycle is created on the running loop (clear it before waiting)."""
        loop = asyncio.get_running_loop()
        if loop not in self._changed:
            self._changed[loop] = asyncio.Event()
        return self._changed[loop]

    def live(self) -> list[tuple[Stent, WorkerLifecycle]]:
        return [(ex, lc) for ex, lc, _ in self.created if lc.state is not LifecycleState.STOPPED]

    def named(self, name: str) -> tuple[Stent, WorkerLifecycle]:
        found = [(ex, lc) for ex, lc, _ in self.created if lc.name == name]
        if not found:
            raise AssertionError(
                f"no worker lifecycle named {name!r} was created; got {[lc.name for _, lc, _ in self.created]}"
            )
        return found[-1]


OnReady = Callable[[Stent, WorkerLifecycle], Awaitable[None]]


async def drive_workers(
    task: asyncio.Future[Any],
    watch: WorkerWatch,
    on_ready: OnReady | None = None,
    *,
    timeout: float = 30.0,
    where: str = "the block",
) -> list[WorkerLifecycle]:
    """Bound a coroutine that serves until drained: drain each worker it starts once that worker is ready.

    ``on_ready(executor, lifecycle)`` runs first, while the worker serves (assertions about what it does).
    Returns the lifecycles drained, in order; raises if ``task`` fails or does not end within ``timeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = len(watch.created)
    drained: list[WorkerLifecycle] = []
    changed = watch.changed()
    while True:
        fresh = watch.created[seen:]
        seen = len(watch.created)
        for executor, lifecycle, _ in fresh:
            ready = asyncio.ensure_future(lifecycle.wait_until_ready())
            await asyncio.wait(
                {ready, task}, timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED
            )
            ready.cancel()
            if lifecycle.state is LifecycleState.READY:
                if on_ready is not None:
                    await asyncio.wait_for(on_ready(executor, lifecycle), max(0.1, deadline - loop.time()))
                executor.request_worker_drain(lifecycle)
                drained.append(lifecycle)
            elif task.done():
                break
        if task.done():
            break
        changed.clear()
        if len(watch.created) > seen:
            continue
        waiter = asyncio.ensure_future(changed.wait())
        try:
            await asyncio.wait(
                {task, waiter}, timeout=max(0.0, deadline - loop.time()), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            waiter.cancel()
        if loop.time() >= deadline and not task.done():
            task.cancel()
            raise SnippetError(f"{where}: the serving code did not end within {timeout:g}s")
    task.result()
    return drained


def _exception_named(name: str, namespace: dict[str, Any]) -> type[BaseException]:
    for scope in (namespace, vars(stent), vars(__import__("builtins"))):
        found = scope.get(name)
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
    raise SnippetError(f"`test: raises {name}`: no exception class of that name in the page, stent or builtins")


class PageRun:
    """Runs the python blocks of one page in order, in one module namespace, on one event loop."""

    def __init__(
        self, path: Path, *, prelude: dict[str, Any] | None = None, module_name: str | None = None
    ) -> None:
        self.path = path
        self.blocks = python_blocks(path)
        self.outputs = expected_outputs(path)
        slug = re.sub(r"\W+", "_", _display(path).removesuffix(".md")).strip("_")
        self.module = types.ModuleType(module_name or f"stent_docs.{slug}")
        self.module.__file__ = str(path)
        self.namespace: dict[str, Any] = self.module.__dict__
        self.namespace.update(prelude or {})
        self.loop = asyncio.new_event_loop()
        self.watch = WorkerWatch()
        self.ran: list[Block] = []
        self.skipped: list[tuple[Block, str]] = []
        show_source(path)

    # -- the whole page --------------------------------------------------------------------------------

    def run(self, *, upto: Block | None = None, include_xfail: bool = False) -> None:
        """Run every block (or those up to ``upto``); raise on the first that does not behave."""
        with self.session():
            for block in self.blocks:
                if block.has("xfail") and not (include_xfail and block is upto):
                    self.skipped.append((block, f"xfail: {block.directive('xfail')}"))
                elif block.has("skip"):
                    self.skipped.append((block, f"skip: {block.directive('skip')}"))
                else:
                    self.run_block(block)
                if block is upto:
                    break

    @contextlib.contextmanager
    def session(self) -> Iterator[PageRun]:
        previous_module = sys.modules.get(self.module.__name__)
        sys.modules[self.module.__name__] = self.module
        previous_current = Stent._current
        previous_cwd = os.getcwd()
        workdir = tempfile.TemporaryDirectory(prefix="stent-docs-")
        os.chdir(workdir.name)
        asyncio.set_event_loop(self.loop)
        try:
            with self.watch.installed():
                yield self
                self.loop.run_until_complete(self._stop_workers())
        finally:
            try:
                self._close_loop()
            finally:
                asyncio.set_event_loop(None)
                os.chdir(previous_cwd)
                workdir.cleanup()
                Stent._current = previous_current
                if previous_module is None:
                    sys.modules.pop(self.module.__name__, None)
                else:
                    sys.modules[self.module.__name__] = previous_module

    def _close_loop(self) -> None:
        pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    async def _stop_workers(self) -> None:
        """Drain any worker a page left running, so it ends cleanly (and its storage is not in use)."""
        live = self.watch.live()
        for executor, lifecycle in live:
            executor.request_worker_drain(lifecycle)
        for _, lifecycle in live:
            if lifecycle.worker_id is not None:  # it was passed to serve(); wait for serve() to stop
                await asyncio.wait_for(lifecycle.wait_until_stopped(), BLOCK_TIMEOUT)

    # -- one block -------------------------------------------------------------------------------------

    def compile(self, block: Block) -> types.CodeType:
        return compile_block(block)

    def run_block(self, block: Block) -> None:
        code = self.compile(block)
        expected_output = self.outputs.get(block.line)
        raises = block.directive("raises")
        stdout = io.StringIO()
        try:
            with contextlib.redirect_stdout(stdout) if expected_output is not None else contextlib.nullcontext():
                if block.has("serve"):
                    self.loop.run_until_complete(self._serve(block, code))
                elif code.co_flags & inspect.CO_COROUTINE:
                    self.loop.run_until_complete(asyncio.wait_for(self._evaluate(code), BLOCK_TIMEOUT))
                else:
                    exec(code, self.namespace)  # noqa: S102 - running the docs is the point
        except BaseException as exc:
            if raises is not None and isinstance(exc, _exception_named(raises, self.namespace)):
                self.ran.append(block)
                return
            if isinstance(exc, TimeoutError) and not isinstance(exc, stent.StentError):
                raise SnippetError(f"{block.where}: the block did not finish within {BLOCK_TIMEOUT:g}s") from exc
            raise
        if raises is not None:
            raise SnippetError(f"{block.where}: the block should raise {raises} but finished normally")
        if expected_output is not None:
            got, want = _normal(stdout.getvalue()), _normal(expected_output)
            if got != want:
                raise SnippetError(f"{block.where}: the block printed\n{got}\nbut the page shows\n{want}")
        self.ran.append(block)

    async def _evaluate(self, code: types.CodeType) -> None:
        await evaluate(code, self.namespace)

    async def _serve(self, block: Block, code: types.CodeType) -> None:
        """Run a block that serves until drained: drain each worker it starts once that worker is ready."""
        if not code.co_flags & inspect.CO_COROUTINE:
            raise SnippetError(f"{block.where}: a `test: serve` block must await serve() at top level")
        task = asyncio.ensure_future(self._evaluate(code))
        drained = await drive_workers(task, self.watch, timeout=BLOCK_TIMEOUT, where=block.where)
        if not drained:
            raise SnippetError(f"{block.where}: a `test: serve` block started no worker")


async def evaluate(code: types.CodeType, namespace: dict[str, Any]) -> None:
    """Run compiled block code in ``namespace``, awaiting it when it has top-level ``await``."""
    result = eval(code, namespace)
    if inspect.isawaitable(result):
        await result


def compile_block(block: Block) -> types.CodeType:
    """Compile a block so that tracebacks name the Markdown file and line; top-level ``await`` allowed."""
    source = "\n" * (block.line - 1) + block.source
    try:
        return compile(source, str(block.path), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except SyntaxError as exc:
        raise SnippetError(f"{block.where}: the block is not valid Python: {exc}") from exc


def show_source(path: Path) -> None:
    """Let tracebacks print the lines of ``path`` (a Markdown file is not a module linecache can find)."""
    text = path.read_text(encoding="utf-8")
    linecache.cache[str(path)] = (len(text), None, text.splitlines(keepends=True), str(path))


def _normal(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def pages(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.md"))
