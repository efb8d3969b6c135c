"""Compiling a document: :func:`compile_pdf` runs pdflatex (non-interactive, in a temporary
directory, at most :data:`PDFLATEX_TIMEOUT` seconds) and :func:`log_excerpt` picks the error
lines out of its log.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...errors import LatexCompileError, SymiftError

# --------------------------------------------------------------------------- compiling, the command line
#: Seconds pdflatex may take on one document.
PDFLATEX_TIMEOUT = 120


def compile_pdf(tex_path, pdf_path=None, source=None) -> Path:
    """Compile a LaTeX file with pdflatex (non-interactive, in a temporary directory) to
    ``pdf_path`` (default: beside it, ``.pdf``).  A missing pdflatex or a failed compile raises
    :class:`~symift.errors.LatexCompileError` with the relevant lines of the log."""
    tex_path = Path(tex_path)
    target = Path(pdf_path) if pdf_path else tex_path.with_suffix(".pdf")
    if target == tex_path:
        target = tex_path.with_name(tex_path.name + ".pdf")
    exe = shutil.which("pdflatex")
    if exe is None:
        raise LatexCompileError("pdflatex not found: install TeX Live (Debian: apt-get install "
                                "texlive-latex-base) or leave out --pdf", None, source)
    with tempfile.TemporaryDirectory(prefix="symift-latex-") as tmp:
        work = Path(tmp)
        shutil.copyfile(tex_path, work / "derivation.tex")
        command = [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "derivation.tex"]
        try:
            proc = subprocess.run(command, cwd=work, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=PDFLATEX_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise LatexCompileError(f"pdflatex did not finish within {PDFLATEX_TIMEOUT} s on {tex_path}",
                                    None, source) from None
        pdf, log = work / "derivation.pdf", work / "derivation.log"
        if proc.returncode != 0 or not pdf.exists():
            text_ = log.read_text(errors="replace") if log.exists() else proc.stdout.decode(errors="replace")
            raise LatexCompileError(f"pdflatex failed on {tex_path} (exit {proc.returncode}):\n"
                                    + log_excerpt(text_), None, source)
        try:
            shutil.copyfile(pdf, target)
        except OSError as exc:
            raise SymiftError(f"cannot write {target}: {exc.strerror}", None, source) from None
    return target


def log_excerpt(log: str, limit: int = 15) -> str:
    """The error lines of a TeX log: each '!' line through its 'l.N' context line."""
    lines = log.splitlines()
    out = []
    for k, line in enumerate(lines):
        if line.startswith("!"):
            out.append(line)
            for follow in lines[k + 1:k + 8]:
                out.append(follow)
                if re.match(r"l\.\d+", follow):
                    break
    out = [x for x in out if x.strip()] or [x for x in lines if x.strip()][-limit:]
    return "\n".join("    " + x for x in out[:limit])
