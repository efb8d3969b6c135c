"""LaTeX: a sympy ``LatexPrinter`` for symift's vocabulary, and the derivation as a document.

The printer knows every class a derivation emits and nothing else: ``diag(z)`` is
``\\operatorname{diag}(z)``, ``OneMatrix`` is ``\\mathbf{1}_n``, ``lam`` is ``\\lambda``, the
direction ``dQ`` of a matrix parameter is ``\\mathrm{d}Q``.  Elementwise operations are written
``u \\odot v`` (product), ``u \\oslash v`` (division) and ``u^{\\circ k}`` (power), and
``\\operatorname{diag}(u^{\\circ k})`` as ``\\operatorname{diag}(u)^{k}``.  Any other sympy class —
``Sum``, ``Lambda``, a ``Dummy`` — raises :class:`~symift.errors.UnsupportedError` instead of
leaking into the output.

:func:`document` writes the whole derivation as it would be done by hand: the problem, the
Lagrangian, the KKT system F(x, θ) = 0, the three conditions of the implicit function theorem,
∂F/∂x and ∂F/∂θ as block matrices, the block elimination with its Schur complements and the
KKT facts each one uses, and dx*/dθ = −(∂F/∂x)⁻¹ ∂F/∂θ for every requested pair.

The package, one concept per module: :mod:`.printer` (names and :class:`LatexPrinter`),
:mod:`.problem` (the problem as stated, :class:`ModelLatexPrinter`), :mod:`.layout` (text and
line widths), :mod:`.replay` (the elimination replayed with its facts), :mod:`.document`
(:class:`Document`, :func:`document`, :func:`summary`) with its sections in
:mod:`.problem_sections` and :mod:`.solution_sections`, and :mod:`.pdf` (:func:`compile_pdf`).
"""
from __future__ import annotations

from .document import Document, document, summary
from .layout import LINE, text
from .pdf import PDFLATEX_TIMEOUT, compile_pdf, log_excerpt
from .printer import LatexPrinter, join_terms, latex, symbol_name
from .problem import DEFINITIONS, ModelLatexPrinter
from .replay import Pivot, Trace, Update, replay

__all__ = [
    "DEFINITIONS", "LINE", "PDFLATEX_TIMEOUT", "Document", "LatexPrinter", "ModelLatexPrinter", "Pivot",
    "Trace", "Update", "compile_pdf", "document", "join_terms", "latex", "log_excerpt", "replay", "summary",
    "symbol_name", "text",
]
