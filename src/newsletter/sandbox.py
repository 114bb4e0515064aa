"""The one kind of Jinja environment the tool renders with: sandboxed and bounded.

Templates and one-line settings such as ``issue.subject`` are written by editors, not
programmers, and their output is published (the archive, the feed) and mailed to everyone.
Jinja's own ``ImmutableSandboxedEnvironment`` keeps them away from Python's internals
(``cycler.__init__.__globals__`` would otherwise reach ``os.environ`` and every secret in
it) and from changing the data they are given; it also caps ``range`` at 100,000 items.
What it leaves open is time and size: nested loops or ``"x" * 10**9`` run for as long and
grow as large as they like. So every render here has a deadline, checked whenever the
template calls something, looks up an attribute or an item, or hands over output, and a
cap on the characters it may produce; either ends the render with a ``TemplateError`` that
names the template (file:line where Jinja gives it) and the limit.
"""

from __future__ import annotations

import contextvars
import operator
import time
from collections.abc import Callable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import TemplateError

SANDBOX_HINT = (
    "templates and settings rendered by newsletter run in a sandbox: they may use the "
    "variables, filters and methods of the data they are given, not Python's internals"
)


@dataclass(frozen=True)
class RenderLimits:
    seconds: float
    """Wall time one render may take."""
    characters: int
    """Characters one render may produce (and any one string it builds on the way)."""


class RenderLimitExceeded(TemplateError):
    """A render ran past its time or output limit; the message says which limit.

    The renderer that catches it puts the template's name (and line) in front.
    """


@dataclass
class _Budget:
    limits: RenderLimits
    deadline: float

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(
                "rendering took longer than the limit of "
                f"{self.limits.seconds:g} s and was stopped",
                hint="look for loops inside loops or other work that grows with its input; "
                "template.time_limit in newsletter.yml sets the limit",
            )

    def check_size(self, size: int) -> None:
        if size > self.limits.characters:
            raise RenderLimitExceeded(
                f"the output passed the limit of {self.limits.characters:,} "
                "characters and rendering was stopped",
                hint="look for a loop or a repeated string that makes the output this large; "
                "template.output_limit in newsletter.yml sets the limit",
            )


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "newsletter_render_budget", default=None
)


def _check_time() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.check_time()


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with the running render's budget checked in its hooks."""

    intercepted_binops = frozenset({"*", "**"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        _check_time()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _check_time()
        return super().getitem(obj, argument)

    def call(
        __self,  # Jinja's own signature: a call may pass 'self' as a keyword argument
        __context: jinja2.runtime.Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _check_time()
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(
        self, context: jinja2.runtime.Context, operator_name: str, left: Any, right: Any
    ) -> Any:
        """``*`` and ``**`` can build a value too large to hold before any output is seen."""
        _check_time()
        budget = _budget.get()
        if budget is not None:
            budget.check_size(_result_size(operator_name, left, right))
        return _BINOPS[operator_name](left, right)


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {"*": operator.mul, "**": operator.pow}


def _result_size(operator_name: str, left: Any, right: Any) -> int:
    """About how many characters (or digits) the result would have, without making it."""
    if operator_name == "*":
        for sequence, times in ((left, right), (right, left)):
            if isinstance(sequence, Sized) and isinstance(times, int):
                return len(sequence) * max(times, 0)
        return 0
    if isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        return int(abs(left).bit_length() * right * 0.302) + 1  # log10(2) digits per bit
    return 0


def sandboxed_environment(**options: Any) -> BoundedSandbox:
    """A bounded sandbox with Jinja's ``options`` (loader, autoescape, undefined, ...)."""
    return BoundedSandbox(**options)


def render_bounded(template: jinja2.Template, context: dict[str, Any], limits: RenderLimits) -> str:
    """Render ``template`` within ``limits``, or raise RenderLimitExceeded.

    Output is taken chunk by chunk from ``generate`` so a render is stopped as soon as it
    passes a limit, not after it has built the whole string.
    """
    budget = _Budget(limits, time.monotonic() + limits.seconds)
    token = _budget.set(budget)
    try:
        return "".join(_bounded_chunks(template.generate(context), budget))
    finally:
        _budget.reset(token)


def _bounded_chunks(chunks: Iterator[str], budget: _Budget) -> Iterator[str]:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        budget.check_size(size)
        budget.check_time()
        yield chunk
