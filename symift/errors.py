"""User-facing errors.

Every error symift raises for bad input or failed mathematics derives from
:class:`SymiftError`.  An error that comes from the text carries a :class:`Span`
(file, line, column) and the source, and renders the way compilers do::

    softmax.ift:4:12: error: unknown name 'thet'; did you mean 'theta'?
        maximize dot(thet, z) + entropy(z)
                     ^~~~
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Span:
    """A source range: 1-based line and column of the first and last character."""

    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None  # exclusive, as lark reports it


@dataclass(frozen=True)
class Source:
    """The text a problem was parsed from, kept to quote it in error messages."""

    filename: str
    text: str

    def line(self, number: int) -> str:
        # lark counts lines at "\n" only; str.splitlines() would also break at \f, \x85, \u2028, ...
        lines = self.text.split("\n")
        return lines[number - 1].rstrip("\r") if 1 <= number <= len(lines) else ""


class SymiftError(Exception):
    """Base of every symift error: a message, and where in the source it comes from."""

    #: CLI exit status: 2 for bad input, 1 where the mathematics fails.
    exit_status = 2

    def __init__(self, message: str, span: Span | None = None, source: Source | None = None):
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source

    @property
    def filename(self) -> str | None:
        return self.source.filename if self.source else None

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    def located(self, source: Source) -> SymiftError:
        """Attach the source if the error does not carry one yet (returns self)."""
        if self.source is None:
            self.source = source
        return self

    def render(self) -> str:
        """``FILE:LINE:COL: error: message``, then the source line and a caret."""
        where = self.filename or "<input>"
        if self.span is None:
            return f"{where}: error: {self.message}"
        head = f"{where}:{self.span.line}:{self.span.column}: error: {self.message}"
        if self.source is None:
            return head
        text = _printable(self.source.line(self.span.line))
        col = max(self.span.column, 1)
        width = 1
        if self.span.end_line == self.span.line and self.span.end_column:
            width = max(1, self.span.end_column - col)
        width = max(1, min(width, len(text) - col + 1))
        caret = " " * (col - 1) + "^" + "~" * (width - 1)
        return f"{head}\n    {text}\n    {caret}"

    def __str__(self) -> str:
        return self.render()


def _printable(line: str) -> str:
    # Tabs would shift the caret; control characters would garble the terminal.
    return "".join(c if c.isprintable() else " " for c in line.replace("\t", " "))


class ParseError(SymiftError):
    """The text is not in the language (bad character, token, or end of input)."""


class UnknownNameError(SymiftError):
    """A name that is not declared (with a suggestion when one is close)."""


class DuplicateError(SymiftError):
    """A name declared twice."""


class ShapeError(SymiftError):
    """Operands whose shapes do not fit: both shapes are named in the message."""


class EquationCountError(SymiftError):
    """A root problem whose number of scalar equations differs from its unknowns."""


class ProblemError(SymiftError):
    """A problem that is well-formed text but not a well-posed problem (no objective, ...)."""


class UnsupportedError(SymiftError):
    """A construct symift understands but cannot (yet) differentiate or solve."""

    exit_status = 1


class MathError(SymiftError):
    """The mathematics fails: an IFT condition is violated, a block is singular."""

    exit_status = 1


class SolverOutputError(SymiftError):
    """A user ``solver=`` returned no solution of the problem's shape, or cannot be traced by JAX."""


class ArgumentError(SymiftError, TypeError):
    """A call with the wrong arguments (a layer without one of its parameters, a name it does not have)."""


class LatexCompileError(SymiftError):
    """pdflatex is missing, or the derivation's LaTeX document did not compile."""

    exit_status = 1






def did_you_mean(name: str, candidates) -> str:
    """A ``; did you mean 'x'?`` suffix when a candidate is close to ``name``."""
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
