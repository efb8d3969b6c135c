"""Property tests: the parser never crashes, and every well-formed problem parses and shape-checks."""
from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symift
from symift.language.model import unparse

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_TEXTS = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").glob("*.ift"))]

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GENERATE = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def parse_or_symift_error(text: str):
    """Parse; anything but a SymiftError (or success) fails the property. Returns the outcome."""
    try:
        problem = symift.parse(text, "fuzz.ift")
    except symift.SymiftError as exc:
        # the error is well-formed: it renders, and its position lies inside the text
        rendered = exc.render()
        assert rendered.startswith("fuzz.ift:")
        if exc.span is not None:
            assert 1 <= exc.span.line <= text.count("\n") + 1
            assert exc.span.column >= 1
            assert "\n" in rendered and "^" in rendered.split("\n")[-1]
        return exc
    assert problem.variables
    if problem.objective is not None:
        assert problem.shape_of(problem.objective.expr) == ()
    return problem


# --------------------------------------------------------------------------- (a) never a crash
@FUZZ
@given(st.text())
def test_random_text_gives_a_problem_or_a_symift_error(text):
    parse_or_symift_error(text)


# Characters that matter to the grammar, so mutations reach past the lexer.
SPICY = st.sampled_from(list("()[],:+-*/@^.T#<>=!0123456789 \t\n\r\f\"'\\_xzn") + [
    "**", ">= 0", "> 0", "==", "<=", "subject to", "solve", "minimize", "param", "var", "dim", "sum(",
    "\x00", "\xff", "θ", "\u2028", "pd", ".T", "e5"])


@st.composite
def mutated_example(draw):
    text = draw(st.sampled_from(EXAMPLE_TEXTS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "replace", "swap_lines", "duplicate_line", "drop_line"]))
        if kind in ("swap_lines", "duplicate_line", "drop_line"):
            lines = text.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "swap_lines":
                lines[i], lines[j] = lines[j], lines[i]
            elif kind == "duplicate_line":
                lines.insert(j, lines[i])
            else:
                del lines[i]
            text = "\n".join(lines)
            continue
        pos = draw(st.integers(0, len(text)))
        piece = draw(st.one_of(SPICY, st.text(min_size=1, max_size=3)))
        if kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 5)):]
        elif kind == "insert":
            text = text[:pos] + piece + text[pos:]
        else:
            text = text[:pos] + piece + text[pos + 1:]
    return text


@FUZZ
@given(mutated_example())
def test_mutated_examples_give_a_problem_or_a_symift_error(text):
    parse_or_symift_error(text)


def test_the_mutation_strategy_reaches_both_outcomes():
    # guards the fuzz test against a strategy that only ever produces lexer errors
    assert len(EXAMPLE_TEXTS) >= 7
    outcomes = {"problem": 0, "parse": 0, "semantic": 0}

    @settings(max_examples=200, deadline=None, database=None)
    @given(mutated_example())
    def collect(text):
        result = parse_or_symift_error(text)
        if isinstance(result, symift.Problem):
            outcomes["problem"] += 1
        elif isinstance(result, symift.ParseError):
            outcomes["parse"] += 1
        else:
            outcomes["semantic"] += 1

    collect()
    assert all(outcomes.values()), outcomes


# --------------------------------------------------------------------------- (b) well-formed problems
DIM_POOL = ["n", "m", "p", "k"]


class Env:
    """What a generated problem declares: names by shape."""

    def __init__(self, dims, params, variables):
        self.dims = dims
        self.params = params          # name -> shape
        self.variables = variables    # name -> shape
        self.all = {**params, **variables}

    def leaves(self, shape):
        return sorted(name for name, s in self.all.items() if s == shape)

    def vector_dims(self):
        return sorted({s[0] for s in self.all.values() if len(s) == 1})

    def matrices(self):
        return sorted((name, s) for name, s in self.all.items() if len(s) == 2)


NUMBERS = st.sampled_from(["0", "1", "2", "0.5", "3.25", "1e-3", "2.5E+2", ".5", "10."])


def scalar_expr(draw, env: Env, depth: int) -> str:
    leaves = env.leaves(())
    choices = ["number", "leaf"] if depth <= 0 else [
        "number", "leaf", "binop", "neg", "func", "pow", "reduce", "dot", "inner", "quad", "paren", "bilinear",
        "transpose"]
    if not leaves:
        choices = [c for c in choices if c != "leaf"]
    if not env.vector_dims():
        choices = [c for c in choices if c not in ("reduce", "dot", "inner", "quad", "bilinear")]
    square = [(name, s) for name, s in env.matrices() if s[0] == s[1]]
    if not square:
        choices = [c for c in choices if c not in ("quad", "bilinear")]
    kind = draw(st.sampled_from(choices))
    sub = depth - 1
    if kind == "number":
        return draw(NUMBERS)
    if kind == "leaf":
        return draw(st.sampled_from(leaves))
    if kind == "binop":
        op = draw(st.sampled_from(["+", "-", "*", "/"]))
        return f"{scalar_expr(draw, env, sub)} {op} {scalar_expr(draw, env, sub)}"
    if kind == "neg":
        return f"-{scalar_expr(draw, env, sub)}" if draw(st.booleans()) else f"-({scalar_expr(draw, env, sub)})"
    if kind == "func":
        f = draw(st.sampled_from(["log", "exp", "sqrt", "sin", "cos", "tanh", "abs"]))
        return f"{f}({scalar_expr(draw, env, sub)})"
    if kind == "pow":
        op = draw(st.sampled_from(["^", "**"]))
        return f"({scalar_expr(draw, env, sub)}){op}{draw(st.sampled_from(['2', '3', '0.5']))}"
    if kind == "paren":
        return f"({scalar_expr(draw, env, sub)})"
    if kind == "transpose":  # a scalar is its own transpose
        return f"({scalar_expr(draw, env, sub)}).T"
    d = draw(st.sampled_from(env.vector_dims()))
    if kind == "reduce":
        f = draw(st.sampled_from(["sum", "sumsq", "norm2", "norm1", "entropy", "logsumexp"]))
        return f"{f}({vector_expr(draw, env, d, sub)})"
    if kind == "dot":
        return f"dot({vector_expr(draw, env, d, sub)}, {vector_expr(draw, env, d, sub)})"
    if kind == "inner":  # u.T @ v is 1×1, a scalar
        return f"({vector_expr(draw, env, d, sub)}).T @ ({vector_expr(draw, env, d, sub)})"
    name, (r, _) = draw(st.sampled_from(square))
    v = env.leaves((r,))
    if not v:
        return draw(NUMBERS)
    x = draw(st.sampled_from(v))
    if kind == "quad":
        return f"quad({x}, {name})"
    return f"{x}.T @ {name} @ {x}"


def vector_expr(draw, env: Env, d: str, depth: int) -> str:
    """An expression of shape vector[d]; env has at least one leaf of that shape or a matrix into it."""
    leaves = env.leaves((d,))
    into = [(name, s) for name, s in env.matrices() if s[0] == d and env.leaves((s[1],))]
    base = (["leaf"] if leaves else []) + (["matvec"] if into else [])
    assert base, "the generator only asks for vectors it can build"
    choices = base if depth <= 0 else base + ["binop", "scale", "neg", "func", "pow", "tt", "paren"]
    kind = draw(st.sampled_from(choices))
    sub = depth - 1
    if kind == "leaf":
        return draw(st.sampled_from(leaves))
    if kind == "matvec":
        name, (_, c) = draw(st.sampled_from(into))
        x = draw(st.sampled_from(env.leaves((c,))))
        return f"{name} @ {x}" if draw(st.booleans()) else f"{name}.T.T @ {x}"
    if kind == "binop":
        op = draw(st.sampled_from(["+", "-", "*", "/"]))
        return f"{vector_expr(draw, env, d, sub)} {op} ({vector_expr(draw, env, d, sub)})"
    if kind == "scale":
        op = draw(st.sampled_from(["*", "/", "+", "-"]))
        s, v = scalar_expr(draw, env, sub), vector_expr(draw, env, d, sub)
        return f"({s}) {op} ({v})" if draw(st.booleans()) else f"({v}) {op} ({s})"
    if kind == "neg":
        return f"-({vector_expr(draw, env, d, sub)})"
    if kind == "func":
        f = draw(st.sampled_from(["log", "exp", "sqrt", "sin", "cos", "tanh", "abs"]))
        return f"{f}({vector_expr(draw, env, d, sub)})"
    if kind == "pow":
        return f"({vector_expr(draw, env, d, sub)})^2"
    if kind == "tt":
        return f"({vector_expr(draw, env, d, sub)}).T.T"
    return f"({vector_expr(draw, env, d, sub)})"


def side(draw, env: Env, shape, depth: int) -> str:
    """One side of a constraint or equation of the given shape."""
    return scalar_expr(draw, env, depth) if shape == () else vector_expr(draw, env, shape[0], depth)


@st.composite
def well_formed_problem(draw):
    """Random source text of a well-formed problem, and what it declares."""
    dims = draw(st.lists(st.sampled_from(DIM_POOL), min_size=1, max_size=3, unique=True))
    shape = st.one_of(st.just(()), st.tuples(st.sampled_from(dims)),
                      st.tuples(st.sampled_from(dims), st.sampled_from(dims)))
    params = {f"p{i}": s for i, s in enumerate(draw(st.lists(shape, max_size=4)))}
    var_shape = st.one_of(st.just(()), st.tuples(st.sampled_from(dims)))
    variables = {f"v{i}": s for i, s in enumerate(draw(st.lists(var_shape, min_size=1, max_size=3)))}
    env = Env(dims, params, variables)
    positive = {name: draw(st.booleans()) for name in variables}

    lines = [f"dim {', '.join(dims)}"]
    for name, s in params.items():
        decl = f"param {name}" + (f"[{', '.join(s)}]" if s else "")
        if len(s) == 2 and s[0] == s[1]:
            decl += "".join(" " + a for a in draw(st.lists(st.sampled_from(["symmetric", "psd", "pd"]),
                                                           max_size=2, unique=True)))
        if s == ():
            decl += draw(st.sampled_from(["", " > 0", " >= 0"]))
        lines.append(decl)
    for name, s in variables.items():
        lines.append(f"var {name}" + (f"[{s[0]}]" if s else "") + (" > 0" if positive[name] else ""))

    expected = []  # (relation, shape, label)
    if draw(st.booleans()):  # optimization problem
        objective = scalar_expr(draw, env, draw(st.integers(0, 3)))
        lines.append(f"{draw(st.sampled_from(['minimize', 'maximize']))} {objective}")
        constraints = draw(st.lists(st.tuples(st.sampled_from(["==", "<=", ">="]),
                                              st.sampled_from([()] + [(d,) for d in env.vector_dims()]),
                                              st.booleans()), max_size=4))
        if constraints:
            lines.append("subject to")
        for i, (rel, cshape, labelled) in enumerate(constraints):
            lhs, rhs = (side(draw, env, cshape, 1) for _ in range(2))
            label = f"c{i}" if labelled else None
            lines.append("    " + (f"{label}: " if label else "") + f"{lhs} {rel} {rhs}")
            expected.append((rel, cshape, label))
        kind = "optimization"
    else:  # root problem: one equation of each unknown's shape
        lines.append("solve")
        for i, s in enumerate(variables.values()):
            lhs, rhs = (side(draw, env, s, 2) for _ in range(2))
            label = f"e{i}" if draw(st.booleans()) else None
            lines.append("    " + (f"{label}: " if label else "") + f"{lhs} == {rhs}")
            expected.append(("==", s, label))
        kind = "root"
    return "\n".join(lines) + "\n", env, kind, expected


@GENERATE
@given(well_formed_problem())
def test_well_formed_problems_parse_and_shape_check(case):
    text, env, kind, expected = case
    p = symift.parse(text, "gen.ift")
    assert p.kind == kind
    assert [d.name for d in p.dims] == env.dims
    assert {q.name: q.shape for q in p.params} == env.params
    assert {v.name: v.shape for v in p.variables} == env.variables
    if kind == "optimization":
        assert p.shape_of(p.objective.expr) == ()
        assert [(c.relation, c.shape) for c in p.constraints] == [(r, s) for r, s, _ in expected]
        for c, (_, _, label) in zip(p.constraints, expected, strict=False):
            assert c.labelled == (label is not None)
            if label:
                assert c.multiplier == label
            assert p.shape_of(c.lhs) in ((), c.shape) and p.shape_of(c.rhs) in ((), c.shape)
        multipliers = [c.multiplier for c in p.constraints]
        assert len(set(multipliers)) == len(multipliers)
        assert not set(multipliers) & set(p.declarations)
        assert p.equations == ()
    else:
        assert p.objective is None and p.constraints == ()
        assert [(e.shape, e.label) for e in p.equations] == [(s, label) for _, s, label in expected]
    assert p.summary().startswith(f"gen.ift: {kind} problem")


@GENERATE
@given(well_formed_problem(), st.data())
def test_layout_does_not_change_the_problem(case, data):
    """Comments, blank lines, indentation and '^' vs '**' never change the parsed problem."""
    text, *_ = case
    out = []
    for line in text.split("\n"):
        indent = data.draw(st.sampled_from(["", "  ", "\t", " \t "]))
        comment = data.draw(st.sampled_from(["", "  # note", "\t#", " # x == 1 ^ (("]))
        pieces = re.split(r"\*\*|\^", line)
        line = pieces[0] + "".join(data.draw(st.sampled_from(["^", "**", " ^ ", " ** "])) + piece
                                   for piece in pieces[1:])
        out.append(indent + line + (comment if line.strip() else ""))
        if data.draw(st.booleans()):
            out.append(data.draw(st.sampled_from(["", "   ", "# a comment line", "\t\t# indented"])))
    messy = "\n".join(out)
    assert symift.parse(messy) == symift.parse(text)


@GENERATE
@given(well_formed_problem())
def test_summary_expressions_reparse_to_the_same_tree(case):
    """``unparse`` (used by ``symift check``) writes text that parses back to the same expression."""
    text, *_ = case
    p = symift.parse(text)
    exprs = [p.objective.expr] if p.objective is not None else []
    exprs += [e for c in p.constraints for e in (c.lhs, c.rhs)]
    exprs += [e for eq in p.equations for e in (eq.lhs, eq.rhs)]
    assume(exprs)
    header = text.split("\nminimize")[0].split("\nmaximize")[0].split("\nsolve")[0]
    for e in exprs:
        shape = p.shape_of(e)
        wrapped = unparse(e) if shape == () else f"sum({unparse(e)})"
        again = symift.parse(f"{header}\nminimize {wrapped}\n").objective.expr
        assert (again if shape == () else again.args[0]) == e
