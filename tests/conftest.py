"""Test configuration: float64 JAX everywhere (SPEC: derived Jacobians are checked in float64).

JAX keeps the compiled executables of every function it traced for the life of the process
(about 12 MB for each distinct problem's layer, its jacfwd, jacrev and jit); one process running
the suite held 3.7 GB halfway through and kept growing, and a CI run died in XLA's compiler
(exit 139) near the end.  Each test module ends with JAX's caches emptied (2.9 GB at most per
worker since).
"""
import gc

import jax
import pytest

jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True, scope="module")
def _fresh_jax_caches():
    yield
    jax.clear_caches()
    gc.collect()
