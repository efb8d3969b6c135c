"""`symift derive` through a subprocess: output, exit codes, no tracebacks."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import COUPLED

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(*args):
    return subprocess.run([sys.executable, "-m", "symift.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.ift")), ids=lambda p: p.stem)
def test_derive_every_example(path):
    r = run("derive", path)
    assert r.returncode == 0, r.stderr
    result = "Tangent system" if path.stem in COUPLED else "Jacobians"  # no closed form: tests/helpers.py
    for section in ("Implicit function theorem", result):
        assert section in r.stdout
    assert "Traceback" not in r.stderr


def test_derive_softmax_prints_the_closed_form():
    r = run("derive", EXAMPLES / "softmax.ift")
    assert "dz/dtheta = diag(z) - z zᵀ" in r.stdout
    assert "Lagrangian" in r.stdout and "stationarity in z" in r.stdout


def test_derive_filters_pairs():
    r = run("derive", EXAMPLES / "eqqp.ift", "--param", "b")
    assert r.returncode == 0
    assert "dz/db" in r.stdout and "dz/dq" not in r.stdout


def test_derive_exit_1_when_ift_fails(tmp_path):
    f = tmp_path / "singular.ift"
    f.write_text("param theta\nvar x\nvar y\nsolve\n x + y == theta\n 2*x + 2*y == 1\n")
    r = run("derive", f)
    assert r.returncode == 1
    assert "error:" in r.stderr and "singular" in r.stderr and "Traceback" not in r.stderr


def test_derive_exit_1_on_unsupported_construct(tmp_path):
    f = tmp_path / "vecpow.ift"
    f.write_text("dim n\nparam t[n]\nvar x[n]\nminimize sum(x ^ t)\n")
    r = run("derive", f)
    assert r.returncode == 1, r.stderr
    assert f"{f}:4:" in r.stderr and "Traceback" not in r.stderr


def test_derive_exit_2_on_bad_input(tmp_path):
    f = tmp_path / "bad.ift"
    f.write_text("dim n\nvar z[n]\nminimize sum(z) + thet\n")
    r = run("derive", f)
    assert r.returncode == 2
    assert r.stderr.startswith(f"{f}:3:")


def test_derive_unknown_param_is_bad_input():
    r = run("derive", EXAMPLES / "softmax.ift", "--param", "nope")
    assert r.returncode == 2 and "not a parameter" in r.stderr
