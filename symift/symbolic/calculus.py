"""symift's own differentiation rules: matrix differentials of the language's constructs.

``differential(e, seeds)`` is the directional derivative (JVP) of ``e``: every symbol ``x`` in
``seeds`` moves by ``dx = seeds[x]`` (a scalar symbol, or a matrix symbol of x's shape), the
rest is held fixed.  The result is linear in the directions and has ``e``'s shape:

    d(A x) = dA x + A dx                 d(x ∘ y) = dx ∘ y + x ∘ dy
    d f.(x) = f'.(x) ∘ dx               d Scalar(M) = Scalar(dM)
    d X⁻¹ = −X⁻¹ dX X⁻¹                  d f(s) = f'(s) ds

sympy's ``MatrixExpr.diff`` is not used: in sympy 1.14 it gets d/dz Σ zᵢ log zᵢ = 0, drops
softmax's −zzᵀ term and raises on d/dt (X + tI)⁻¹.  :func:`jacobian` turns a differential
into the Jacobian matrix ∂e/∂x (for scalar and vector x) through ``symift.symbolic.algebra``.
"""
from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixExpr

from .algebra import Algebra
from .expr import Scalar, is_matrix, total
from .printing import text
from .vec import Vec


def zero_like(e):
    return sp.ZeroMatrix(*e.shape) if is_matrix(e) else sp.S.Zero


def is_zero(e) -> bool:
    if is_matrix(e):
        return isinstance(e, sp.ZeroMatrix) or (isinstance(e, sp.MatMul) and any(
            a == 0 for a in e.args if not is_matrix(a)))
    return e == 0


def _sum(terms, like):
    terms = [t for t in terms if not is_zero(t)]
    if not terms:
        return zero_like(like)
    if len(terms) == 1:
        return terms[0]
    return sp.MatAdd(*terms) if is_matrix(like) else sp.Add(*terms)


def depends_on(e, symbols) -> bool:
    symbols = set(symbols)
    if bool(e.free_symbols & symbols) or any(a in symbols for a in e.atoms(sp.MatrixSymbol)):
        return True
    composite = [s for s in symbols if isinstance(s, Vec)]  # vec(B) of a coupled problem in vec form
    return bool(composite) and e.has(*composite)


def differential(e, seeds: dict, maps: dict | None = None):
    """The differential of ``e`` when each ``x`` in ``seeds`` moves along ``seeds[x]``.

    ``maps``: {symbol: symbolic.operators.Map} — symbols standing for a smooth map of an argument
    (p = softmax(u)), which move with their argument by the map's rule.
    """
    return _Differential(seeds, maps or {}).d(e)


class _Differential:
    def __init__(self, seeds, maps):
        self.seeds = seeds
        self.maps = maps
        self.cache = {}
        # what moves: the seeds, and the maps whose argument moves (to a fixed point: maps of maps)
        self.moving = set(seeds)
        grew = True
        while grew:
            new = {p for p, m in maps.items() if p not in self.moving and (
                depends_on(m.arg, self.moving) or (m.radius is not None and depends_on(m.radius, self.moving)))}
            self.moving |= new
            grew = bool(new)

    def d(self, e):
        if e in self.seeds:
            return self.seeds[e]
        if e in self.maps:
            return self.d_map(self.maps[e])
        if not depends_on(e, self.moving):
            return zero_like(e)
        if e not in self.cache:
            method = getattr(self, "d_" + type(e).__name__, None)
            if method is None:
                method = self.d_function if isinstance(e, sp.Function) else None
            if method is None:
                raise NotImplementedError(f"no differentiation rule for {text(e)}")
            self.cache[e] = method(e)
        return self.cache[e]

    def d_map(self, m):
        """d softmax(u) = p∘du − p (pᵀdu) with p = softmax(u): the symbol itself, or the unknown x of
        an equation x == softmax(u) (equal at the solution, where the derivatives are taken)."""
        du = self.d(m.arg)
        p = m.symbol if m.equals is None else m.equals
        if m.kind == "proj_l2ball":  # u min(1, r/‖u‖): outside the ball (s = 1) r u/‖u‖, else u
            s, norm, r = m.support, m.threshold, m.radius
            dr = self.d(r)
            terms = [] if is_zero(du) else [
                (1 - s) * du + s * (r / norm) * (du - sp.MatMul(Scalar(sp.MatMul(p.T, du)) / r ** 2, p))]
            terms += [] if dr == 0 else [sp.MatMul(s * dr / r, p)]
            return _sum(terms, m.symbol)
        if is_zero(du):
            return zero_like(m.symbol)
        if m.kind == "proj_simplex":  # on the support s (held fixed), the projection onto 1ᵀdp = 0
            s = m.support
            return sp.HadamardProduct(s, du) - sp.MatMul(Scalar(sp.MatMul(s.T, du)) / total(s), s)
        if p.shape[1] != 1:  # row by row: dP = P∘dU − P∘((P∘dU) 1 1ᵀ)
            # P itself, not the unknown X it equals at a solution: with u = log X − η∇f (mirror
            # descent), P∘(X^∘-1∘dX) is not dX where an entry of X tends to 0 (P/X → e^{−ημ} < 1
            # off the support), and there is no closed form to simplify for
            p, k = m.symbol, p.shape[1]
            pdu = sp.HadamardProduct(p, du)
            return pdu - sp.HadamardProduct(p, sp.MatMul(pdu, sp.OneMatrix(k, 1), sp.OneMatrix(1, k)))
        return sp.HadamardProduct(p, du) - sp.MatMul(Scalar(sp.MatMul(p.T, du)), p)

    # ---- scalars
    def d_Add(self, e):
        return _sum([self.d(a) for a in e.args], e)

    def product_rule(self, e, product):
        """d(a₁⋯aₖ) = Σᵢ a₁⋯daᵢ⋯aₖ, for any product constructor (Mul, MatMul, ∘)."""
        terms = []
        for i, a in enumerate(e.args):
            da = self.d(a)
            if not is_zero(da):
                terms.append(product(*e.args[:i], da, *e.args[i + 1:]))
        return _sum(terms, e)

    def d_Mul(self, e):
        return self.product_rule(e, sp.Mul)

    def d_Pow(self, e):
        base, exp = e.args
        dbase, dexp = self.d(base), self.d(exp)
        out = []
        if not is_zero(dbase):
            out.append(exp * base ** (exp - 1) * dbase)
        if not is_zero(dexp):
            out.append(e * sp.log(base) * dexp)
        return _sum(out, e)

    def d_function(self, e):
        if len(e.args) != 1:
            raise NotImplementedError(f"no differentiation rule for {e.func}")
        (x,) = e.args
        return away_from_kinks(e.fdiff(1)) * self.d(x)

    def d_Scalar(self, e):
        dm = self.d(e.matrix)
        return sp.S.Zero if is_zero(dm) else Scalar(dm)

    # ---- matrices
    def d_MatAdd(self, e):
        return _sum([self.d(a) for a in e.args], e)

    def d_MatMul(self, e):
        return self.product_rule(e, sp.MatMul)

    def d_Transpose(self, e):
        da = self.d(e.arg)
        return zero_like(e) if is_zero(da) else sp.Transpose(da)

    def d_HadamardProduct(self, e):
        return self.product_rule(e, sp.HadamardProduct)

    def d_HadamardPower(self, e):
        base, exp = e.args
        if depends_on(exp, self.seeds):
            raise NotImplementedError("elementwise power with a varying exponent")
        dbase = self.d(base)
        if exp == 1:
            return dbase
        factor = base if exp == 2 else sp.HadamardPower(base, exp - 1)
        return sp.HadamardProduct(exp * factor, dbase) if exp != 2 else sp.HadamardProduct(2 * base, dbase)

    def d_ElementwiseApplyFunction(self, e):
        return sp.HadamardProduct(elementwise_derivative(e), self.d(e.expr))

    def d_DiagMatrix(self, e):
        return sp.DiagMatrix(self.d(e.args[0]))

    def d_Inverse(self, e):
        x = e.arg
        return -sp.MatMul(e, self.d(x), e)

    def d_MatPow(self, e):
        """Xᵏ as a product of k factors X (or −k factors X⁻¹): sympy folds d_Inverse's X⁻¹ dt X⁻¹ into X⁻²."""
        base, k = e.args
        if not k.is_Integer:
            raise NotImplementedError(f"matrix power with a non-integer exponent: {e}")
        if k == 0:
            return zero_like(e)
        factor = base if k > 0 else sp.Inverse(base)
        return self.d(sp.MatMul(*[factor] * abs(int(k))))

    def d_Vec(self, e):
        d = self.d(e.arg)
        return zero_like(e) if is_zero(d) else Vec(d)

    def d_KroneckerProduct(self, e):
        return self.product_rule(e, sp.KroneckerProduct)

    def d_OneMatrix(self, e):
        return zero_like(e)

    d_Identity = d_ZeroMatrix = d_OneMatrix


def away_from_kinks(derivative):
    """A derivative where it exists: the Dirac deltas of sign′ and Heaviside′ are 0 away from 0.

    |t| and sign(t) are differentiable except at t = 0; there F is not C¹ and the IFT does not
    apply (the report states "t ≠ 0" as a smoothness requirement: symift.symbolic.conditions), so
    the derivative is the one that holds where they are smooth — never a DiracDelta.
    """
    if not derivative.has(sp.DiracDelta):
        return derivative
    return derivative.replace(lambda a: isinstance(a, sp.DiracDelta), lambda a: sp.S.Zero)


def elementwise_derivative(e: ElementwiseApplyFunction) -> MatrixExpr:
    """f'.(x) for f.(x), written with the plainest class: x^k, f itself, or f'.(x)."""
    lam, x = e.function, e.expr
    (var,) = lam.variables
    real = sp.Dummy(var.name, real=True)  # entries are real: d|t|/dt = sign(t), not re/im terms
    fprime = away_from_kinks(sp.simplify(sp.diff(lam.expr.xreplace({var: real}), real)).xreplace({real: var}))
    if fprime == 0:
        return sp.ZeroMatrix(*x.shape)
    if fprime == lam.expr:  # exp
        return e
    power = sp.Wild("k", exclude=[var])
    match = fprime.match(var ** power)
    if match is not None and match[power].is_number:
        return sp.HadamardPower(x, match[power])
    coeff, rest = fprime.as_independent(var, as_Add=False)
    match = rest.match(var ** power)
    if coeff != 1 and match is not None and match[power].is_number:
        return coeff * sp.HadamardPower(x, match[power])
    return x.applyfunc(sp.Lambda(var, fprime))


def direction_for(x, alg):
    """A direction symbol for ``x`` (dx), and the symbol the algebra extracts against."""
    if isinstance(x, Vec):  # vec(B): the direction vec(dB)
        d = Vec(sp.MatrixSymbol("d" + x.arg.name, *x.arg.shape))
        return d, alg.vector_placeholder(d)
    if isinstance(x, sp.MatrixSymbol):
        d = sp.MatrixSymbol("d" + x.name, *x.shape)
        return d, (alg.vector_placeholder(d) if x.shape[1] == 1 else d)
    d = sp.Symbol("d" + x.name, real=True)
    return d, d


def jacobian(e, x, alg=None):
    """∂e/∂x as a sympy matrix expression (a scalar for scalar e and x), in standard classes.

    e.g. ∂/∂z (log z + 1 − θ) = DiagMatrix(HadamardPower(z, −1)).
    """
    alg = alg or Algebra()
    return alg.to_sympy(jacobian_lin(e, x, alg))


def hessian(f, x, alg=None):
    """∇²ₓ f = ∂(∇ₓ f)/∂x for a scalar f, as a sympy matrix expression."""
    alg = alg or Algebra()
    return jacobian(gradient(f, x, alg), x, alg)


def jacobian_lin(e, x, alg):
    """∂e/∂x as a canonical :class:`~symift.symbolic.canonical.Lin` (rows of e × entries of x).

    ``e`` is a scalar or a column vector; ``x`` a scalar symbol or a vector MatrixSymbol.
    Computed as the coefficient of dx in the differential de = (∂e/∂x) dx.
    """
    d, key = direction_for(x, alg)
    de = alg.lin(differential(e, {x: d}, alg.maps))
    size = x.shape[0] if isinstance(x, (sp.MatrixSymbol, Vec)) else sp.S.One
    return alg.coefficient(de, key, size)


def directional(e, x, alg):
    """The directional derivative of ``e`` along dX for a matrix symbol X, canonical."""
    d, _ = direction_for(x, alg)
    return alg.lin(differential(e, {x: d}, alg.maps)), d


def gradient(f, x, alg=None):
    """∇ₓ f = (∂f/∂x)ᵀ for a scalar f, as a sympy expression (vector, or scalar for scalar x)."""
    alg = alg or Algebra()
    return alg.to_sympy(alg.transpose(jacobian_lin(f, x, alg)))
