"""``symift verify`` / ``Derivation.verify``: every example passes, and a wrong closed form fails."""
from __future__ import annotations

from pathlib import Path

import pytest
import sympy as sp
from helpers import COUPLED

import symift
from symift.cli import main
from symift.symbolic.derivation import Derivation as SymbolicDerivation

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.ift")))
def test_every_example_verifies(name):
    report = symift.derive(symift.load(EXAMPLES / f"{name}.ift")).verify(seed=1)
    assert report.ok, str(report)
    # a coupled matrix variable has no closed form: jacfwd against FD and jacrev is what is checked
    assert report.checks and all((c.closed_vs_fd is None) == (name in COUPLED) for c in report.checks)
    assert all(c.jacfwd_vs_fd is not None for c in report.checks)
    assert "OK:" in str(report)


def test_cli_verify_exits_0_and_prints_the_table(capsys):
    assert main(["verify", str(EXAMPLES / "sparsemax.ift"), "--seed", "3", "--dims", "n=6"]) == 0
    out = capsys.readouterr().out
    assert "dz/dtheta" in out and "n=6" in out and "OK: 1 Jacobians agree" in out


def test_a_wrong_closed_form_is_caught(monkeypatch, capsys):
    """Scale one derived Jacobian by 1.01 — as a slip in a hand derivation would — and verify fails."""
    right = SymbolicDerivation.jacobian

    def wrong(self, var, param):
        J = right(self, var, param)
        return sp.Rational(101, 100) * J if (var, param) == ("z", "q") else J

    monkeypatch.setattr(SymbolicDerivation, "jacobian", wrong)
    assert main(["verify", str(EXAMPLES / "eqqp.ift"), "--dims", "n=4,m=2"]) == 1
    out = capsys.readouterr().out
    assert "dz/dq" in out and "DISAGREE" in out and "FAILED: dz/dq disagree" in out


def test_bad_dims_are_input_errors(capsys):
    assert main(["verify", str(EXAMPLES / "sparsemax.ift"), "--dims", "k=3"]) == 2
    assert "unknown dim(s) k" in capsys.readouterr().err
    assert main(["verify", str(EXAMPLES / "sparsemax.ift"), "--dims", "n=zero"]) == 2
