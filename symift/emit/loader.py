"""Generated code, imported: a module from its source text, and a closed form as a JAX function.

Generated code is imported from a file in a per-process temporary directory — never ``exec``-ed.
"""
from __future__ import annotations

import importlib.util
import inspect
import sys
import tempfile
import weakref
from pathlib import Path

from ..errors import ArgumentError
from ..runtime import STATUS_KEYS
from .module import ModuleWriter

_MODULES: dict = {}
_TMPDIR = None


def load_module(source: str, name: str):
    """Import generated source as a module (from a file in a per-process temp directory)."""
    global _TMPDIR
    key = (name, source)
    if key in _MODULES:
        return _MODULES[key]
    if _TMPDIR is None:
        _TMPDIR = tempfile.mkdtemp(prefix="symift_")
    path = Path(_TMPDIR) / f"{name}_{len(_MODULES)}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"symift_generated.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    _MODULES[key] = module
    return module


_PROBLEM_MODULES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def problem_module(derivation):
    """The derivation's generated problem module (imports the runtime) and its writer, made once
    per derivation: printing every closed form is the slow part of compile and jacobian_function."""
    if derivation not in _PROBLEM_MODULES:
        writer = ModuleWriter(derivation)
        _PROBLEM_MODULES[derivation] = (load_module(writer.source(standalone=False), "problem"), writer)
    return _PROBLEM_MODULES[derivation]


def jacobian_function(derivation, var: str, param: str):
    """A JAX function of keyword arrays giving the closed form d var/d param.

    For a matrix parameter P the function also takes ``d<P>`` and returns the directional
    derivative.  Indicators (e.g. ``s``) are keyword arguments like any other value.
    """
    derivation.jacobian(var, param)  # validates the names
    module, writer = problem_module(derivation)
    fn = getattr(module, f"jacobian_{writer.layout.py[var]}_{writer.layout.py[param]}")
    to_py = dict(writer.layout.py)
    from_py = {v: k for k, v in to_py.items()}
    expected = [from_py.get(a, a) for a in inspect.signature(fn).parameters]

    def jacobian(**values):
        # a layer's result can be passed as it is: its status entries are not arguments
        values = {k: v for k, v in values.items() if k not in STATUS_KEYS}
        missing = [a for a in expected if a not in values]
        unknown = [k for k in values if k not in expected]
        if missing or unknown:
            raise ArgumentError(f"the closed form d{var}/d{param} takes {', '.join(expected)}"
                                + (f"; missing {', '.join(missing)}" if missing else "")
                                + (f"; unknown {', '.join(unknown)}" if unknown else ""), None,
                                derivation.problem.source)
        return fn(**{to_py.get(k, k): v for k, v in values.items()})

    jacobian.__doc__ = fn.__doc__
    return jacobian
