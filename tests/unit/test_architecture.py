"""The hexagon holds: the core imports nothing but stdlib, msgspec and numpy; adapters ignore each other."""

import subprocess
import sys
import textwrap
from pathlib import Path

import predictor_core

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint_imports), "--config", str(ROOT / "pyproject.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def test_importing_the_core_loads_only_stdlib_msgspec_and_numpy():
    code = textwrap.dedent(
        """
        import sys
        before = set(sys.modules)
        import predictor_core
        added = {name.split(".")[0] for name in set(sys.modules) - before}
        # typing_extensions is msgspec's own import (msgspec._utils)
        allowed = set(sys.stdlib_module_names) | {"predictor_core", "msgspec", "numpy", "typing_extensions"}
        print(",".join(sorted(added - allowed)))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_public_names_are_exported_and_sorted():
    names = predictor_core.__all__
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for name in names:
        assert hasattr(predictor_core, name), name
