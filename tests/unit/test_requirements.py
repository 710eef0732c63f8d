"""Optional packages: a missing one is named, with its install command, before any Spark job."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from deepflash.requirements import TENSORFLOW, MissingDependencyError, Requirement, require

# Runs in a fresh interpreter in which `tensorflow` cannot be found, as on a platform without it.
WITHOUT_TENSORFLOW = textwrap.dedent("""
    import importlib.abc, sys

    class Hide(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Hide())
    from deepflash import KerasEstimator
    from deepflash.requirements import MissingDependencyError
    try:
        KerasEstimator(layers="simple").validateParams()
    except MissingDependencyError as e:
        print("ERROR:", e)
""")


def test_a_missing_package_is_named_with_its_extra_and_this_python():
    missing = Requirement("deepflash_no_such_module", "nosuchpkg", "nosuch", "the nosuch feature")
    assert not missing.installed()
    with pytest.raises(MissingDependencyError) as info:
        require(missing)
    text = str(info.value)
    assert text.startswith("the nosuch feature needs nosuchpkg, which is not installed for " + sys.executable)
    assert "pip install 'deepflash[nosuch]'" in text and "%pip install 'deepflash[nosuch]'" in text
    assert isinstance(info.value, ImportError)


def test_an_installed_package_passes():
    require(TENSORFLOW)
    assert Requirement("json", "json", "none", "x").installed()


def test_fit_without_tensorflow_names_it_before_anything_runs():
    out = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [x for x in out.stdout.splitlines() if x.startswith("ERROR:")]
    assert line, out.stdout + out.stderr[-2000:]
    assert "needs tensorflow, which is not installed" in line[0]
    assert "pip install 'deepflash[tensorflow]'" in line[0]


def test_horovod_missing_names_the_profiles_and_the_barrier_backend():
    from deepflash.backends.horovod import horovod_missing

    text = horovod_missing("No module named 'horovod'")
    assert "No module named 'horovod'" in text and sys.executable in text
    assert "classic profile" in text and "modern profile" in text and "backend='barrier'" in text
    assert "deepflash[horovod]" in text
