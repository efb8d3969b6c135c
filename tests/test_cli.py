"""The command line (SPEC §3): exit statuses, summaries on stdout, clean errors on stderr."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.ift"))
ERROR_LINE = re.compile(r"^(?P<file>[^\n]+):(?P<line>\d+):(?P<col>\d+): error: \S")


def run(*args, cwd=None, timeout=60):
    return subprocess.run([sys.executable, "-m", "symift.cli", *map(str, args)], check=False, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def assert_clean_error(proc, status):
    assert proc.returncode == status, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.stderr.strip(), "an error says what is wrong"


def test_examples_are_all_there():
    spec = {"softmax", "sparsemax", "ridge", "eqqp", "optnet_qp", "circle", "fixed_point"}  # SPEC §1
    assert spec <= {p.stem for p in EXAMPLES}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_check_succeeds_on_every_example(path):
    proc = run("check", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert re.fullmatch(rf"{re.escape(str(path))}: (optimization|root) problem", lines[0])
    text = path.read_text(encoding="utf-8")
    for name in re.findall(r"^var\s+([A-Za-z_]\w*)", text, re.MULTILINE):
        assert any(re.match(rf"\s+var\s+{name}\b", line) for line in lines), proc.stdout
    for name in re.findall(r"^param\s+([A-Za-z_]\w*)", text, re.MULTILINE):
        assert any(re.match(rf"\s+param\s+{name}\b", line) for line in lines), proc.stdout
    kind = "root" if re.search(r"^solve\b", text, re.MULTILINE) else "optimization"
    assert lines[0].endswith(f"{kind} problem")


def test_check_summary_names_multipliers_and_shapes():
    proc = run("check", ROOT / "examples" / "softmax.ift")
    assert proc.returncode == 0
    assert re.search(r"constraint\s+nu: sum\(z\) == 1\s+\[scalar\]", proc.stdout)
    assert re.search(r"constraint\s+lam: z >= 0\s+\[vector\[n\]\]", proc.stdout)
    assert re.search(r"objective:\s+maximize dot\(theta, z\) \+ entropy\(z\)", proc.stdout)


BAD = [
    ("syntax", "dim n\nvar x[n]\nminimize sum(x\n", 3, 15),
    ("unknown-name", "dim n\nparam theta[n]\nvar z[n]\nminimize dot(thet, z)\n", 4, 14),
    ("shape", "dim n, m\nparam y[m]\nvar x[n]\nminimize sum(x + y)\n", 4, 14),
    ("equation-count", "param theta\nvar x\nvar y\nsolve\n  x == theta\n", 4, 1),
    ("python", 'var x\nminimize __import__("os").system("touch PWNED")\n', 2, 21),
    ("empty", "", 1, 1),
    ("binary", b"\x00\xff\xfe\x89PNG\r\n", 1, 2),
    ("deep", "var x\nminimize " + "exp(" * 5000 + "x" + ")" * 5000 + "\n", 2, None),
]


@pytest.mark.parametrize("case_id, source, line, column", BAD, ids=[b[0] for b in BAD])
def test_bad_input_exits_2_with_a_located_error(tmp_path, case_id, source, line, column):
    path = tmp_path / f"{case_id}.ift"
    path.write_bytes(source if isinstance(source, bytes) else source.encode("utf-8"))
    proc = run("check", path, cwd=tmp_path)
    assert_clean_error(proc, 2)
    assert proc.stdout == ""
    m = ERROR_LINE.match(proc.stderr)
    assert m, proc.stderr
    assert m["file"] == str(path) and int(m["line"]) == line
    if column is not None:
        assert int(m["col"]) == column
    # the source line and a caret under the column follow
    caret = proc.stderr.rstrip("\n").split("\n")[2]
    assert re.fullmatch(r" *\^~*", caret)
    assert caret.index("^") == 4 + int(m["col"]) - 1
    assert not (tmp_path / "PWNED").exists()


def test_missing_file_exits_2(tmp_path):
    missing = tmp_path / "does-not-exist.ift"
    proc = run("check", missing)
    assert_clean_error(proc, 2)
    assert proc.stderr.startswith(f"{missing}: error: ")
    assert "cannot read" in proc.stderr


def test_usage_errors_exit_2():
    proc = run()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run("frobnicate", ROOT / "examples" / "ridge.ift")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_help_lists_the_commands():
    proc = run("--help")
    assert proc.returncode == 0
    for command in ("check", "derive", "codegen"):
        assert command in proc.stdout


def test_codegen_writes_a_module_or_says_it_cannot(tmp_path):
    out = tmp_path / "softmax_layer.py"
    proc = run("codegen", ROOT / "examples" / "softmax.ift", "-o", out)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    if proc.returncode == 0:
        assert out.is_file() and out.stat().st_size > 0
        compile(out.read_text(encoding="utf-8"), str(out), "exec")  # valid Python
    else:
        assert proc.returncode == 1, proc.stderr
        assert not out.exists()
        message = proc.stderr.strip()
        assert len(message.splitlines()) == 1, message
        assert re.match(rf"^{re.escape(str(ROOT / 'examples' / 'softmax.ift'))}(:\d+:\d+)?: error: \S", message)


def test_codegen_of_bad_input_exits_2(tmp_path):
    bad = tmp_path / "bad.ift"
    bad.write_text("var x\nminimize x +\n")
    proc = run("codegen", bad, "-o", tmp_path / "out.py")
    assert_clean_error(proc, 2)
    assert ERROR_LINE.match(proc.stderr)
    assert not (tmp_path / "out.py").exists()


def test_codegen_requires_an_output(tmp_path):
    proc = run("codegen", ROOT / "examples" / "ridge.ift")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


# The console script installed next to this interpreter (a `symift` elsewhere on PATH may belong to another install).
SCRIPT = Path(sys.executable).parent / "symift"


@pytest.mark.skipif(not SCRIPT.exists(), reason="the symift console script is not installed with this interpreter")
def test_console_script(tmp_path):
    ok = subprocess.run([str(SCRIPT), "check", str(ROOT / "examples" / "circle.ift")], check=False, capture_output=True,
                        text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"{ROOT / 'examples' / 'circle.ift'}: root problem")
    bad = tmp_path / "bad.ift"
    bad.write_text("var x\nminimize x % 2\n")
    proc = subprocess.run([str(SCRIPT), "check", str(bad)], check=False, capture_output=True, text=True, timeout=60)
    assert_clean_error(proc, 2)
    assert proc.stderr.startswith(f"{bad}:2:12: error: unexpected character '%'")
