"""symift: symbolic implicit differentiation of optimization problems.

Write a problem in the ``.ift`` language; symift builds its Lagrangian and KKT system, checks
the implicit function theorem, and derives the Jacobian of the solution in closed form.

The pipeline, one subpackage per stage: ``language`` (text → Problem), ``symbolic`` (Problem →
KKT system, IFT report, closed forms), ``render`` (text and LaTeX), ``emit`` (JAX code), and
``runtime`` (the forward solves, status and implicit backward that the generated code runs on).
"""
from .api import Derivation, codegen, compile, derive
from .errors import (
    ArgumentError,
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
from .language.model import Problem
from .language.parse import load, parse
from .layer import Layer
from .verify import Report

__version__ = "0.1.0"

__all__ = [
    "ArgumentError", "Derivation", "DuplicateError", "EquationCountError", "Layer", "MathError", "ParseError",
    "Problem", "ProblemError", "Report", "ShapeError", "SolverOutputError", "SymiftError", "UnknownNameError",
    "UnsupportedError", "codegen", "compile", "derive", "load", "parse",
]
