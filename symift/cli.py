"""The ``symift`` command line (SPEC §3).

Exit status: 0 success; 1 the mathematics fails (IFT condition violated, no closed form,
unsupported construct, a verification that disagrees); 2 bad input (syntax, names, shapes,
file).  Errors go to stderr as ``FILE:LINE:COL: error: message`` with the source line and a
caret — never a traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .api import Derivation, codegen
from .errors import MathError, SymiftError
from .language.parse import load
from .render.latex import compile_pdf
from .render.text import report


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="symift", description="Symbolic implicit differentiation of "
                                 "optimization problems written in the .ift language.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = sub.add_parser("check", help="parse and shape-check a problem; print a summary")
    check.add_argument("file")

    derive = sub.add_parser("derive", help="derive the Lagrangian, KKT system, IFT check and Jacobians")
    derive.add_argument("file")
    derive.add_argument("--wrt", action="append", metavar="VAR", help="only Jacobians of this variable")
    derive.add_argument("--param", action="append", metavar="PARAM", help="only w.r.t. this parameter")
    derive.add_argument("--latex", metavar="OUT.tex", help="write the derivation as a LaTeX document")
    derive.add_argument("--pdf", action="store_true", help="also compile the LaTeX document to PDF")

    codegen_ = sub.add_parser("codegen", help="write a standalone JAX module for the problem")
    codegen_.add_argument("file")
    codegen_.add_argument("-o", "--output", required=True, metavar="OUT.py")

    verify = sub.add_parser("verify", help="check the derived Jacobians at random data against finite "
                            "differences of re-solves and jax.jacfwd / jacrev")
    verify.add_argument("file")
    verify.add_argument("--seed", type=int, default=0, help="random seed of the data (default 0)")
    verify.add_argument("--dims", metavar="n=4,m=2", help="sizes of some or all dims (default: random, 2-5)")
    verify.add_argument("--wrt", action="append", metavar="VAR", help="only Jacobians of this unknown")
    verify.add_argument("--param", action="append", metavar="PARAM", help="only w.r.t. this parameter")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args)
    except SymiftError as exc:
        print(exc.render(), file=sys.stderr)
        return exc.exit_status
    except RecursionError:
        print(f"{args.file}: error: input too deeply nested to process", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def cmd_check(args) -> int:
    print(load(args.file).summary())
    return 0


def cmd_derive(args) -> int:
    """``symift derive FILE``: print the derivation (or write it as LaTeX); exit 1 if the IFT fails."""
    problem = load(args.file)
    d = Derivation(problem)
    if args.latex or args.pdf:
        return _latex(d, args)
    try:
        text = report(d, args.wrt or None, args.param or None)
    except MathError as exc:
        if hasattr(exc, "report"):
            print(exc.report)
        raise
    print(text)
    return 0


def _latex(d, args) -> int:
    """``symift derive FILE --latex OUT.tex [--pdf]``: write (and compile) the document; exit 1 if
    the implicit function theorem fails (the document then says why)."""
    source = d.problem.source
    if not args.latex:
        raise SymiftError("--pdf needs --latex OUT.tex (where to write the document)", None, source)
    tex = d.to_latex(args.wrt or None, args.param or None)
    out = Path(args.latex)
    _write(out, tex, source)
    if args.pdf:
        print(f"wrote {compile_pdf(out, source=source)}")
    if d.ift.holds is False:
        failed = next(c for c in d.ift.conditions if c.holds is False)
        raise MathError(f"the implicit function theorem does not apply: {failed.name}: {failed.reason}",
                        None, source)
    return 0


def cmd_codegen(args) -> int:
    """``symift codegen FILE -o OUT.py``."""
    problem = load(args.file)
    _write(Path(args.output), codegen(problem), problem.source)
    return 0


def cmd_verify(args) -> int:
    """``symift verify FILE``: exit 1 when a derived Jacobian disagrees with the numbers."""
    import jax  # the command needs float64 throughout

    jax.config.update("jax_enable_x64", True)
    problem = load(args.file)
    dims = _dims(args.dims, problem.source) if args.dims else None
    result = Derivation(problem).verify(seed=args.seed, dims=dims, wrt=args.wrt, params=args.param)
    print(result)
    return 0 if result.ok else 1


def _dims(text: str, source) -> dict:
    out = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if not value.strip().isdigit() or int(value) < 1:
            raise SymiftError(f"--dims takes name=size pairs with positive integer sizes, got '{item}'", None, source)
        out[name.strip()] = int(value)
    return out


def _write(path: Path, text: str, source) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SymiftError(f"cannot write {path}: {exc.strerror or exc}", None, source) from None
    print(f"wrote {path}")


_COMMANDS = {"check": cmd_check, "derive": cmd_derive, "codegen": cmd_codegen, "verify": cmd_verify}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
