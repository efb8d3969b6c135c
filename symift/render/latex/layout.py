"""Text and layout: :func:`text` escapes plain text for LaTeX, :func:`width` estimates the glyphs a
piece of math occupies and :data:`LINE` how many fit on a displayed line; :func:`pack`,
:func:`matrix` and :func:`align` lay out sums, block matrices and ``align*`` displays.
"""
from __future__ import annotations

import re
import unicodedata

from .printer import join_terms

# --------------------------------------------------------------------------- text
_TEXT_SYMBOLS = {"−": "-", "–": "--", "—": "---", "≤": r"$\le$", "≥": r"$\ge$", "≠": r"$\neq$",
                 "∘": r"$\circ$", "ᵀ": r"$^{\top}$", "⁻¹": r"$^{-1}$", "∂": r"$\partial$", "θ": r"$\theta$",
                 "ᵢ": r"$_i$", "∈": r"$\in$", "×": r"$\times$", "²": r"$^2$", "…": r"\dots{}", "’": "'",
                 "‘": "`", "“": "``", "”": "''"}
_TEXT_SPECIALS = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
                  "^": r"\textasciicircum{}", "_": r"\_", "%": r"\%", "~": r"\textasciitilde{}",
                  "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}


def text(s: str) -> str:
    """Plain text for LaTeX: specials escaped, a few mathematical characters as math, other
    non-ASCII characters without their accents (or '?'), so the document stays ASCII."""
    s = s.replace("⁻¹", "\0")
    out = []
    for ch in s:
        if ch == "\0":
            out.append(_TEXT_SYMBOLS["⁻¹"])
        elif ch in _TEXT_SPECIALS:
            out.append(_TEXT_SPECIALS[ch])
        elif ch in _TEXT_SYMBOLS:
            out.append(_TEXT_SYMBOLS[ch])
        elif ord(ch) < 128:
            out.append(ch if ch.isprintable() or ch in "\n\t" else " ")
        else:
            ascii_ = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(ascii_ or "?")
    return "".join(out)


def width(tex: str) -> int:
    """A rough count of the glyphs a piece of math occupies (to decide where lines break)."""
    t = re.sub(r"\\(left|right|operatorname|mathbf|mathrm|mathit|text|quad|qquad)(?![A-Za-z])", "", tex)
    t = re.sub(r"\\[A-Za-z]+", "x", t)
    return len(re.sub(r"[{}^_ \\,;!&]", "", t))


#: Glyphs per displayed line (11pt, 16 cm text width).
LINE = 62


# --------------------------------------------------------------------------- layout
def pack(terms, budget: int) -> list:
    """The terms of a sum as lines of at most ``budget`` glyphs (each line at least one term)."""
    chunks, current = [], []
    for t in terms:
        if current and width(join_terms(current + [t])) > budget:
            chunks.append(join_terms(current))
            current = [(t[0], t[1])]
            continue
        current.append(t)
    chunks.append(join_terms(current))
    return [c if k == 0 or c.startswith("-") else "+ " + c for k, c in enumerate(chunks)]


def matrix(cells) -> str:
    if len(cells) == 1 and len(cells[0]) == 1:
        return cells[0][0]
    return "\\begin{bmatrix} %s \\end{bmatrix}" % r" \\ ".join(" & ".join(row) for row in cells)


def align(groups) -> str:
    """One ``align*`` of several equations (each a list of lines)."""
    return "\\begin{align*}\n" + " \\\\[1ex]\n".join(" \\\\\n".join(g) for g in groups) + "\n\\end{align*}"
