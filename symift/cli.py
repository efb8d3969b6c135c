"""The ``symift`` command line (SPEC §3).

Exit status: 0 success; 1 the mathematics fails (IFT condition violated, no closed form,
unsupported construct); 2 bad input (syntax, names, shapes, file).  Errors go to stderr as
``FILE:LINE:COL: error: message`` with the source line and a caret — never a traceback.
"""
from __future__ import annotations

import argparse
import sys

from .errors import SymiftError


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

    codegen = sub.add_parser("codegen", help="write a standalone JAX module for the problem")
    codegen.add_argument("file")
    codegen.add_argument("-o", "--output", required=True, metavar="OUT.py")
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
    from .parse import load

    print(load(args.file).summary())
    return 0


def cmd_derive(args) -> int:
    from .parse import load

    problem = load(args.file)
    try:
        from .derive import derive_command
    except ImportError:
        from .errors import UnsupportedError

        raise UnsupportedError("'derive' is not available in this version of symift", None,
                               problem.source) from None
    return derive_command(problem, args)


def cmd_codegen(args) -> int:
    from .parse import load

    problem = load(args.file)
    try:
        from .codegen import codegen_command
    except ImportError:
        from .errors import UnsupportedError

        raise UnsupportedError("'codegen' is not available in this version of symift", None,
                               problem.source) from None
    return codegen_command(problem, args)


_COMMANDS = {"check": cmd_check, "derive": cmd_derive, "codegen": cmd_codegen}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
