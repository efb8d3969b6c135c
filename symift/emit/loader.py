"""Generated code, imported: a module from its source text, and a closed form as a JAX function.

Generated code is imported from a file in a per-process temporary directory — never ``exec``-ed.
"""
from __future__ import annotations

import atexit
import importlib.util
import inspect
import itertools
import shutil
import sys
import tempfile
import weakref
from pathlib import Path

from ..errors import ArgumentError
from ..runtime import STATUS_KEYS
from .module import ModuleWriter

# Modules by source, held weakly: a module lives as long as a derivation, layer or function that
# uses it, so a long session deriving many problems does not keep every one (and the compiled
# XLA executables of its jitted functions) alive.
_MODULES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_COUNTER = itertools.count()
_TMPDIR = None


def _remove_tmpdir():
    if _TMPDIR is not None:
        shutil.rmtree(_TMPDIR, ignore_errors=True)


def load_module(source: str, name: str):
    """Import generated source as a module (from a file in a per-process temp directory, removed
    when the process exits)."""
    global _TMPDIR
    key = (name, source)
    module = _MODULES.get(key)
    if module is not None:
        return module
    if _TMPDIR is None:
        _TMPDIR = tempfile.mkdtemp(prefix="symift_")
        atexit.register(_remove_tmpdir)
    path = Path(_TMPDIR) / f"{name}_{next(_COUNTER)}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"symift_generated.{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    # registered while it runs (as an import would be), not after: sys.modules would keep it forever
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    _MODULES[key] = module
    return module


def problem_module(derivation):
    """The derivation's generated problem module (imports the runtime) and its writer, made once
    per derivation: printing every closed form is the slow part of compile and jacobian_function.

    Kept on the derivation itself, so it lives exactly as long as the derivation (a weak-keyed
    table cannot hold it: the writer refers to the derivation, which would then never die)."""
    made = getattr(derivation, "_emitted", None)
    if made is None:
        writer = ModuleWriter(derivation)
        made = (load_module(writer.source(standalone=False), "problem"), writer)
        derivation._emitted = made
    return made


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
