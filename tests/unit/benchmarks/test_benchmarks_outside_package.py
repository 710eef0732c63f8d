"""The benchmarks live in the repository's ``benchmarks/``, not in the package: no deepflash module
is a benchmark or imports one, so the wheel and the ``--py-files`` zip hold only the library."""
from __future__ import annotations

import pathlib
import re

import deepflash

PACKAGE = pathlib.Path(deepflash.__file__).parent


def test_no_deepflash_module_is_or_imports_a_benchmark():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules and not [m for m in modules if m.stem.startswith("bench")]
    importing = [str(m.relative_to(PACKAGE)) for m in modules
                 if re.search(r"^\s*(from|import)\s+benchmarks\b", m.read_text(), re.M)]
    assert importing == []
