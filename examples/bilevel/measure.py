"""Timing and memory of jitted functions, shared by the bilevel examples' comparisons."""
from __future__ import annotations

import time

import jax
import numpy as np


def temp_mib(f, *args):
    """XLA's compiled temporary memory of the jitted f at these arguments, in MiB."""
    return f.lower(*args).compile().memory_analysis().temp_size_in_bytes / 2 ** 20


def median_seconds(f, repeat, *args):
    """Median seconds of f(*args) after a warm-up call."""
    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t0)
    return float(np.median(times))
