"""The distributions: ``python -m build`` gives an sdist and a wheel that install and run
``symift derive`` on a shipped example from outside the source tree (issue 18).

Each is installed with ``--no-deps`` into a new virtual environment that sees this one's packages
(jax, sympy, lark: no download), and the console script runs from a temporary directory, so the
checkout is not on the path: the symift that runs is the installed one.
"""
from __future__ import annotations

import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(args, **kw):
    done = subprocess.run(args, check=False, capture_output=True, text=True, timeout=600, **kw)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _venv_seeing_these_packages(env: Path) -> Path:
    """A new venv whose own site-packages come first, then this interpreter's.

    ``--system-site-packages`` alone is not enough when the suite itself runs in a venv (as a
    newcomer's does): the new venv would see the base interpreter's packages, without jax or
    hatchling.  A path line in a .pth file appends this interpreter's site-packages after the new
    venv's own; the .pth files inside them (an editable install of this checkout) are not
    processed, so the symift found is the one installed into the new venv.
    """
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(env)])
    python = env / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    Path(purelib, "_parent_site_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    # sdist first, then the wheel built from the unpacked sdist (build's default): the sdist must
    # hold everything a build needs
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)])
    (sdist,) = out.glob("symift-*.tar.gz")
    (wheel,) = out.glob("symift-*.whl")
    return sdist, wheel


def test_the_distributions_hold_the_package_grammar_and_metadata(dists):
    sdist, wheel = dists
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "symift/grammar/symift.lark" in names and "symift/runtime/layer.py" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    assert any(n.endswith(".dist-info/entry_points.txt") for n in names)
    for field in ("License-Expression: MIT", "Classifier: Programming Language :: Python :: 3",
                  "Requires-Dist: jax", "Requires-Dist: sympy", "Requires-Dist: lark", "Provides-Extra: test"):
        assert field in meta, field
    with tarfile.open(sdist) as tf:
        members = {m.split("/", 1)[1] for m in tf.getnames() if "/" in m}
    for needed in ("pyproject.toml", "README.md", "LICENSE", "grammar/symift.lark", "examples/softmax.ift",
                   "symift/__init__.py"):
        assert needed in members, needed


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_installed_distribution_derives_an_example_outside_the_tree(dists, kind, tmp_path):
    sdist, wheel = dists
    env = tmp_path / "venv"
    python = _venv_seeing_these_packages(env)
    _run([str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          str(wheel if kind == "wheel" else sdist)])
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "examples" / "softmax.ift", work / "softmax.ift")
    where = _run([str(python), "-c", "import symift; print(symift.__file__)"], cwd=work)
    assert Path(where.strip()).is_relative_to(env), where  # the installed copy, not the checkout
    out = _run([str(env / "bin" / "symift"), "derive", "softmax.ift"], cwd=work)
    assert "dz/dtheta = diag(z) - z zᵀ" in out
    assert "dV/dtheta = z" in out
