"""The runtime of symift's layers: jax and numpy only, and nothing from the rest of symift.

A generated module (in-process for ``symift.compile``, or standalone from ``symift codegen``)
holds the problem's printed functions and a :class:`ProblemSpec`; everything else — the forward
solves, the status checks, the implicit backward, user solvers, the layer — is this package,
imported in-process and copied into standalone modules (the code between each file's
``###{standalone`` and ``###}`` markers, in the order of :data:`STANDALONE_FILES`).
"""
from .batching import chunk_size, in_chunks, lapack_pieces
from .dual_newton import dual_newton
from .fixed_point import fixed_point_solve
from .implicit import BACKWARD_METHODS, DENSE_LIMIT, implicit_tangents
from .interior_point import interior_point, kkt_solve
from .layer import STATUS_KEYS, make_layer, whole_status
from .linalg import (
                    cho_factor,
                    cho_solve,
                    col,
                    diag,
                    gram,
                    kron_apply,
                    lu_factor,
                    lu_solve,
                    ones_row,
                    pd_inverse,
                    proj_l2ball,
                    proj_simplex,
                    row,
                    unvec,
                    vec_cols,
                    zeros,
)
from .precision import jacobian_precision
from .recovery import user_solve
from .separable import separable_solve
from .spec import ACCELERATIONS, ProblemSpec, SeparableSpec, SolverError, SolverOutputError, max_of
from .status import cond_limit, factor_condition, norm1_estimate, pivot_condition

#: The runtime files whose standalone sections make up a standalone module, in dependency order.
STANDALONE_FILES = ("batching.py", "linalg.py", "spec.py", "status.py", "interior_point.py", "fixed_point.py",
                    "dual_newton.py",
                    "separable.py", "implicit.py", "recovery.py", "layer.py")
#: Files a standalone module leaves out when the problem does not use them (by the name that needs them).
OPTIONAL_FILES = {"interior_point.py": "kkt_solve", "fixed_point.py": "fixed_point_solve",
                  "dual_newton.py": "dual_newton", "separable.py": "separable_solve"}

#: The names generated problem functions call (user names equal to one are mangled).
HELPERS = ("row", "col", "diag", "gram", "ones_row", "zeros", "kron_apply", "vec_cols", "unvec",
           "cho_factor", "cho_solve", "lu_factor", "lu_solve", "pd_inverse", "proj_simplex", "proj_l2ball",
           "pivot_condition", "factor_condition")

__all__ = [
    "ACCELERATIONS", "BACKWARD_METHODS", "DENSE_LIMIT", "HELPERS", "OPTIONAL_FILES", "STANDALONE_FILES",
    "STATUS_KEYS", "ProblemSpec",
    "SeparableSpec", "SolverError", "SolverOutputError", "cho_factor", "cho_solve", "chunk_size", "col",
    "cond_limit", "diag", "dual_newton", "fixed_point_solve", "gram", "implicit_tangents", "in_chunks",
    "interior_point", "jacobian_precision", "kkt_solve", "lapack_pieces", "lu_factor", "lu_solve", "make_layer",
    "max_of", "norm1_estimate", "ones_row", "pd_inverse", "proj_l2ball", "proj_simplex", "row", "separable_solve",
    "factor_condition",
    "pivot_condition", "user_solve", "whole_status", "zeros", "kron_apply", "vec_cols", "unvec",
]
