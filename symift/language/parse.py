"""Text → :class:`~symift.language.model.Problem`, through the lark grammar in ``grammar/symift.lark``.

The parser is LALR(1) with positions on every node.  The syntax tree is turned into model
objects bottom-up with an explicit stack (no recursion), so deeply nested input gives a clear
error rather than a ``RecursionError``.  User text reaches sympy only through these objects.
"""
from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

import lark
from lark import Lark, Token, Tree

from ..errors import ArgumentError, ParseError, ProblemError, Source, Span, SymiftError
from .model import Binary, Call, Name, Neg, Number, Problem, Transpose, build_problem

#: Deepest expression nesting accepted; deeper input is rejected with a clear error.
MAX_DEPTH = 100
#: Largest source accepted, in characters.
MAX_CHARS = 1_000_000
#: Longest numeric literal accepted, in characters.
MAX_NUMBER_CHARS = 64


def grammar_text() -> str:
    """The grammar, from the installed package, or from the source checkout."""
    packaged = resources.files("symift").joinpath("grammar/symift.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    checkout = Path(__file__).resolve().parents[2] / "grammar" / "symift.lark"
    return checkout.read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


def parse(source: str, filename: str = "<string>") -> Problem:
    """Parse and shape-check problem text; raises :class:`SymiftError` on bad input."""
    if not isinstance(source, str):
        raise ArgumentError(f"parse() takes the problem text as str, got {type(source).__name__}")
    if source.startswith("\ufeff"):  # a UTF-8 byte-order mark is not part of the text
        source = source[1:]
    src = Source(filename, source)
    if len(source) > MAX_CHARS:
        raise ParseError(f"file too large ({len(source)} characters; the limit is {MAX_CHARS})",
                         Span(1, 1), src)
    try:
        tree = _parser().parse(source)
    except lark.exceptions.UnexpectedInput as exc:
        raise _syntax_error(exc, src) from None
    except lark.exceptions.LarkError as exc:  # pragma: no cover - lark internals
        raise ParseError(f"cannot parse: {exc}", Span(1, 1), src) from None
    statements = _Converter(src).statements(tree)
    try:
        return build_problem(src, statements)
    except SymiftError as exc:
        raise exc.located(src) from None


def load(path) -> Problem:
    """Read and parse an ``.ift`` file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProblemError(f"cannot read '{path}': {exc.strerror or exc}", None, Source(str(path), "")) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        # Columns count characters, as lark's do, not bytes (the prefix is valid UTF-8).
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8")) + 1
        shown = data.decode("utf-8", errors="replace")
        raise ParseError("the file is not UTF-8 text (is it a binary file?)", Span(line, column),
                         Source(str(path), shown)) from None
    return parse(text, str(path))


# --------------------------------------------------------------------------- syntax errors
_PUNCTUATION_WORDS = {"_NL": "end of line", "$END": "end of input"}


def _describe_terminal(name: str) -> str:
    if name in _PUNCTUATION_WORDS:
        return _PUNCTUATION_WORDS[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    if pattern.type == "str":
        return f"'{pattern.value}'"
    return {"NAME": "a name", "NUMBER": "a number", "INT": "an integer size", "RELATION": "'==', '<=' or '>='",
            "POW": "'^'", "SUBJECT_TO": "'subject to'", "GT_ZERO": "'> 0'", "GE_ZERO": "'>= 0'"}.get(
        name, name.lower())


def _syntax_error(exc: lark.exceptions.UnexpectedInput, src: Source) -> ParseError:
    line, column = max(getattr(exc, "line", 1) or 1, 1), max(getattr(exc, "column", 1) or 1, 1)
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        char = src.text[exc.pos_in_stream] if exc.pos_in_stream < len(src.text) else ""
        if char in "\"'":
            msg = "strings are not part of the language"
        elif char in "<>" :
            msg = f"unexpected '{char}': only '<=', '>=' and '==' relate expressions"
        elif char.isprintable() and char:
            msg = f"unexpected character '{char}'"
        else:
            msg = f"unexpected character {char!r}"
        return ParseError(msg, Span(line, column), src)
    token = getattr(exc, "token", None)
    expected = sorted({_describe_terminal(t) for t in (getattr(exc, "expected", None) or ())})
    hint = f"; expected {', '.join(expected[:6])}{' or ...' if len(expected) > 6 else ''}" if expected else ""
    if token is None or token.type == "$END":
        lines = src.text.split("\n")  # as lark counts lines: str.splitlines() also breaks at \f, \x85, ...
        return ParseError("unexpected end of input" + hint, Span(len(lines), len(lines[-1]) + 1), src)
    if token.type == "_NL":
        return ParseError("unexpected end of line" + hint, Span(line, column), src)
    if token.type in ("GT_ZERO", "GT_NAME"):  # 'z > 0' outside a declaration lexes as the sign token
        return ParseError("unexpected '>': only '<=', '>=' and '==' relate expressions "
                          "(a strictly positive variable is declared 'var z > 0')", Span(line, column), src)
    end = column + len(token.value) if "\n" not in token.value else None
    return ParseError(f"unexpected '{token.value}'" + hint, Span(line, column, line, end), src)


# --------------------------------------------------------------------------- tree → model
def _span(node) -> Span:
    if isinstance(node, Token):
        return Span(node.line, node.column, node.end_line, node.end_column)
    meta = node.meta
    if getattr(meta, "empty", True):
        return Span(1, 1)
    return Span(meta.line, meta.column, meta.end_line, meta.end_column)


_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@", "pow": "^"}
_EXPR_RULES = set(_BINARY) | {"neg", "transpose", "number", "name", "call"}


class _Converter:
    """Turns lark trees into model objects, bottom-up, without recursion."""

    def __init__(self, source: Source):
        self.source = source

    def statements(self, tree: Tree) -> list:
        out = []
        for stmt in tree.children:
            kind = stmt.data
            handler = getattr(self, "stmt_" + kind)
            out.append(handler(stmt))
        return out

    # -- expressions
    def expr(self, root) -> object:
        """Convert an expression tree with an explicit post-order walk; checks nesting depth."""
        done: dict[int, tuple] = {}  # id(tree) -> (model node, depth)
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if isinstance(node, Token) or id(node) in done:
                continue
            if not expanded:
                stack.append((node, True))
                stack.extend((c, False) for c in node.children if isinstance(c, Tree))
                continue
            kids = [done[id(c)] for c in node.children if isinstance(c, Tree)]
            depth = 1 + max((d for _, d in kids), default=0)
            if depth > MAX_DEPTH:
                raise ParseError(f"expression too deep: more than {MAX_DEPTH} levels of nesting or chained "
                                 "operators (split long sums with sum() over a vector)",
                                 _span(node), self.source)
            done[id(node)] = (self.expr_node(node, [k for k, _ in kids]), depth)
        return done[id(root)][0]

    def expr_node(self, node: Tree, kids: list):
        span, rule = _span(node), node.data
        if rule in _BINARY:
            return Binary(span, _BINARY[rule], kids[0], kids[-1])
        if rule == "neg":
            return Neg(span, kids[0])
        if rule == "transpose":
            return Transpose(span, kids[0])
        if rule == "number":
            text = node.children[0].value
            if len(text) > MAX_NUMBER_CHARS:
                raise ParseError(f"number literal too long ({len(text)} characters)", span, self.source)
            return Number(span, text)
        if rule == "name":
            return Name(span, node.children[0].value)
        if rule == "call":
            func = node.children[0].value
            return Call(span, func, tuple(kids))
        raise ParseError(f"unexpected construct '{rule}'", span, self.source)  # pragma: no cover

    # -- statements: each returns (kind, payload, span)
    def stmt_dim_decl(self, t):
        names = [(tok.value, _span(tok)) for tok in t.children[0].children]
        return ("dim", names, _span(t))

    @staticmethod
    def _shape(shape_tree):
        if shape_tree is None:
            return (), ()
        sizes, spans = [], []
        for s in shape_tree.children:
            tok = s.children[0]
            sizes.append(tok.value if s.data == "size_name" else int(tok.value))
            spans.append(_span(tok))
        return tuple(sizes), tuple(spans)

    @staticmethod
    def _parts(t):
        name = t.children[0]
        shape = next((c for c in t.children[1:] if isinstance(c, Tree) and c.data == "shape"), None)
        attrs = [(c.children[0].value, _span(c)) for c in t.children[1:]
                 if isinstance(c, Tree) and c.data == "attribute"]
        sign_tree = next((c for c in t.children[1:] if isinstance(c, Tree) and c.data == "sign"), None)
        sign = None
        if sign_tree is not None:
            token = sign_tree.children[0]
            sign = {"GT_ZERO": ">0", "GE_ZERO": ">=0"}.get(token.type) or ">" + token.value[1:].strip()
        return name, shape, attrs, sign, sign_tree

    def stmt_param_decl(self, t):
        name, shape, attrs, sign, sign_tree = self._parts(t)
        sizes, spans = self._shape(shape)
        sign_span = _span(sign_tree) if sign_tree is not None else None
        return ("param", (name.value, _span(name), sizes, spans, attrs, sign, sign_span), _span(t))

    def stmt_var_decl(self, t):
        name, shape, _, sign, sign_tree = self._parts(t)
        sizes, spans = self._shape(shape)
        sign_span = _span(sign_tree) if sign_tree is not None else None
        return ("var", (name.value, _span(name), sizes, spans, sign, sign_span), _span(t))

    def stmt_objective(self, t):
        sense, expr = t.children
        return ("objective", (sense.value, self.expr(expr)), _span(t))

    def stmt_subject_to(self, t):
        return ("subject_to", None, _span(t))

    def stmt_solve(self, t):
        return ("solve", None, _span(t))

    def stmt_constraint(self, t):
        kids = t.children
        label = lspan = None
        if len(kids) == 4:
            label, lspan = kids[0].value, _span(kids[0])
            kids = kids[1:]
        lhs, relation, rhs = kids
        return ("constraint", (label, lspan, self.expr(lhs), relation.value, self.expr(rhs)), _span(t))
