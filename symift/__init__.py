"""symift: symbolic implicit differentiation of optimization problems.

Write a problem in the ``.ift`` language; symift builds its Lagrangian and KKT system, checks
the implicit function theorem, and derives the Jacobian of the solution in closed form.
"""
from .errors import (
    DuplicateError,
    EquationCountError,
    MathError,
    ParseError,
    ProblemError,
    ShapeError,
    SolverOutputError,
    SymiftError,
    UnknownNameError,
    UnsupportedError,
)
from .codegen import codegen
from .derive import Derivation, derive
from .layer import Layer, compile
from .model import Problem
from .parse import load, parse

__version__ = "0.1.0"

__all__ = [
    "Derivation", "DuplicateError", "Layer", "codegen", "compile", "derive", "EquationCountError", "MathError", "ParseError", "Problem", "ProblemError",
    "ShapeError", "SolverOutputError", "SymiftError", "UnknownNameError", "UnsupportedError", "load", "parse",
]
