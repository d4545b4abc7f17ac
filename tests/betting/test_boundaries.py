"""The betting core stays framework-free and never reads the wall clock itself."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "betting"
FORBIDDEN = ("dagster", "bentoml", "sqlalchemy")


def modules():
    files = sorted(PACKAGE.glob("*.py"))
    assert len(files) > 10
    return [(f, ast.parse(f.read_text())) for f in files]


def test_no_framework_imports():
    for path, tree in modules():
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            bad = [n for n in names if n.split(".")[0] in FORBIDDEN]
            assert not bad, f"{path.name} imports {bad}"


def test_importing_betting_loads_no_framework():
    code = (
        "import sys, betting.paper, betting.risk, betting.staking, betting.value, betting.settlement; "
        f"print([m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    ).stdout.strip()
    assert out == "[]"


def test_only_the_system_clock_reads_wall_time():
    for path, tree in modules():
        if path.name == "clock.py":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("time", "now", "utcnow", "monotonic", "today"):
                owner = node.value
                owner_name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
                assert owner_name not in ("time", "datetime", "date"), f"{path.name}: {owner_name}.{node.attr}"
