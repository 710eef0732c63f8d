"""The wheel installs onto a platform's own stack: a fresh Python 3.12 environment standing for a
Databricks ML runtime or a cluster image (python/requirements-platform.txt: pyspark 4.3,
TensorFlow 2.21 with Keras 3, numpy 2, pandas 3, mlflow), then ``pip install deepflash-*.whl``.

Checked: the wheel's metadata (ranges, no training framework, Horovod or Petastorm in the core, no
benchmark module); the install only adds packages; ``pip check`` is clean; the README's quick start
runs there (a digits Pipeline with backend="barrier" and 2 processes, transform, save and load);
and a dry-run install into each profile's own environment changes none of its packages.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.platform]

ROOT = Path(__file__).resolve().parents[2]
PLATFORM_REQUIREMENTS = ROOT / "python" / "requirements-platform.txt"
INSTALL_TIMEOUT = 1800
QUICK_START_TIMEOUT = 900


def _platform_python() -> str | None:
    """A Python 3.12: $DEEPFLASH_PLATFORM_PYTHON, pyenv's 3.12.x, or python3.12 on the PATH."""
    if os.environ.get("DEEPFLASH_PLATFORM_PYTHON"):
        return os.environ["DEEPFLASH_PLATFORM_PYTHON"]
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        root = ""
    found = sorted(glob.glob(os.path.join(root, "versions", "3.12.*", "bin", "python3.12"))) if root else []
    return found[-1] if found else shutil.which("python3.12")


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert out.returncode == 0, (f"{' '.join(cmd)} failed ({out.returncode}):\n"
                                 f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return out


def _freeze(python: str) -> dict[str, str]:
    """Installed distributions by normalized name: version (or the URL of a direct install)."""
    out = _run([python, "-m", "pip", "freeze", "--all"], 300).stdout
    packages = {}
    for line in out.splitlines():
        name, sep, version = line.partition("==") if "==" in line else line.partition(" @ ")
        if sep:
            packages[re.sub(r"[-_.]+", "-", name).lower()] = version
    return packages


def _changed(before: dict[str, str], after: dict[str, str]) -> dict[str, tuple[str, str | None]]:
    return {name: (v, after.get(name)) for name, v in before.items() if after.get(name) != v}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from this checkout as `gradle wheel` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "--wheel-dir", str(out), str(ROOT / "python")], 600)
    (path,) = out.glob("deepflash-*.whl")
    return path


@pytest.fixture(scope="module")
def platform(tmp_path_factory, wheel):
    """A Python 3.12 venv with the platform's stack, then the wheel: (python, before, after, seconds)."""
    base = _platform_python()
    if base is None:
        pytest.skip("no Python 3.12 found (set DEEPFLASH_PLATFORM_PYTHON, or install it with pyenv)")
    # The stack alone, as `tools/setup_env.sh --profile platform` builds it (gradle test builds it
    # ahead, beside the profiles; a no-op when it is there), copied: the wheel goes into a fresh copy.
    started = time.time()
    _run(["bash", str(ROOT / "tools" / "setup_env.sh"), "--profile", "platform"], INSTALL_TIMEOUT,
         env={**os.environ, "DEEPFLASH_PLATFORM_PYTHON": base})
    venv = tmp_path_factory.mktemp("platform") / "venv"
    _run(["cp", "-a", str(ROOT / ".venv-platform"), str(venv)], 600)
    python = str(venv / "bin" / "python")
    stack_seconds = time.time() - started
    before = _freeze(python)
    started = time.time()
    _run([python, "-m", "pip", "install", "--quiet", str(wheel)], INSTALL_TIMEOUT)
    wheel_seconds = time.time() - started
    after = _freeze(python)
    print(f"platform stack installed in {stack_seconds:.0f}s, the wheel in {wheel_seconds:.0f}s; the wheel added: "
          + ", ".join(f"{k}=={v}" for k, v in sorted(after.items()) if k not in before))
    yield python, before, after
    shutil.rmtree(venv, ignore_errors=True)


def test_wheel_declares_ranges_and_no_framework_and_holds_only_the_library(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = z.read(meta).decode()
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    assert "Requires-Python: >=3.11" in metadata
    assert core and not [r for r in core if "==" in r], f"pinned core requirements: {core}"
    core_names = {re.split(r"[<>=!~; \[]", r, maxsplit=1)[0].lower() for r in core}
    assert not core_names & {"tensorflow", "tensorflow-cpu", "keras", "horovod", "petastorm", "torch"}, core_names
    assert {"pyspark", "numpy", "pyarrow", "pandas", "mlflow", "optuna", "hyperopt"} <= core_names
    for extra in ("tensorflow", "horovod", "petastorm", "gp"):
        assert f"Provides-Extra: {extra}" in metadata
    modules = [n for n in names if not n.startswith("deepflash-")]
    assert modules and all(n.startswith("deepflash/") for n in modules), modules
    assert not [n for n in modules if "bench" in n.rsplit("/", 1)[-1]], "benchmark modules in the wheel"


def test_install_onto_the_platform_only_adds_packages(platform):
    python, before, after = platform
    assert before["pyspark"] == "4.3.0" and before["tensorflow-cpu"] == "2.21.0" and before["numpy"].startswith("2.")
    assert _changed(before, after) == {}, "the wheel replaced or removed platform packages"
    # No second TensorFlow build beside the platform's own.
    assert not {"tensorflow", "tensorflow-gpu", "tf-nightly"} & set(after)
    assert "deepflash" in after
    _run([python, "-m", "pip", "check"], 300)


def _readme_quick_start() -> str:
    """The README's first Python example (its quick start)."""
    match = re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert match, "the README has no Python example"
    return match.group(1)


CHECKS = """
import json as _json
_acc = model.transform(test).selectExpr("avg(cast(prediction = label as double)) as a").first()["a"]
_p1 = [r["prediction"] for r in model.transform(test).orderBy("label").select("prediction").collect()]
_p2 = [r["prediction"] for r in same.transform(test).orderBy("label").select("prediction").collect()]
import sys as _sys, keras as _keras, pyspark as _pyspark
print("QUICKSTART " + _json.dumps({"accuracy": _acc, "identical": _p1 == _p2, "rows": len(_p1),
      "python": _sys.version.split()[0], "pyspark": _pyspark.__version__, "keras": _keras.__version__,
      "backend": keras_model.getBackend(), "numProc": keras_model.getNumProc()}))
"""


def test_readme_quick_start_runs_on_the_platform(platform, tmp_path):
    python, _, _ = platform
    example = _readme_quick_start()
    assert 'backend="barrier"' in example and "numProc=2" in example
    script = tmp_path / "quick_start.py"
    script.write_text(example + CHECKS)
    env = {**os.environ, "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONWARNINGS": "ignore::FutureWarning,ignore::DeprecationWarning"}
    env.pop("PYTHONPATH", None)
    started = time.time()
    out = _run([python, str(script)], QUICK_START_TIMEOUT, cwd=tmp_path, env=env)
    seconds = time.time() - started
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("QUICKSTART ")]
    result = json.loads(line.split(" ", 1)[1])
    print(f"quick start on the platform: {result} in {seconds:.0f}s")
    assert result["python"].startswith("3.12.") and result["pyspark"] == "4.3.0" and result["keras"].startswith("3.")
    assert result["backend"] == "barrier" and result["numProc"] == 2
    assert result["identical"] and result["rows"] > 300
    assert result["accuracy"] > 0.9


def _pins(path) -> dict[str, str]:
    """``name==version`` lines of a requirements file, by normalized name."""
    pins = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().split("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


PROFILES = {"classic": ROOT / ".venv" / "bin" / "python", "modern": ROOT / ".venv-modern" / "bin" / "python"}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_dry_run_install_into_a_profile_changes_none_of_its_packages(profile, wheel, tmp_path):
    python = PROFILES[profile]
    if not python.exists():
        pytest.skip(f"the {profile} profile is not set up (gradle setup -Pprofile={profile})")
    report = tmp_path / "report.json"
    _run([str(python), "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), str(wheel)], 900)
    installed = _freeze(str(python))
    planned = {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"]
               for i in json.loads(report.read_text())["install"]}
    replaced = {k: (installed[k], v) for k, v in planned.items() if k in installed and k != "deepflash"}
    # The classic profile installs protobuf over TensorFlow 2.15's and opentelemetry-proto's `< 5`
    # for pyspark 4.0's Connect client (python/requirements-connect-classic.txt); pip puts back what
    # those packages declare, whatever the wheel asks for. Only that is allowed, and only there.
    overridden = _pins(ROOT / "python" / "requirements-connect-classic.txt") if profile == "classic" else {}
    replaced = {k: v for k, v in replaced.items() if not (k in overridden and v[0] == overridden[k])}
    assert replaced == {}, f"installing the wheel into the {profile} profile would replace {replaced}"
    lacking = sorted(set(planned) - set(overridden) - {"deepflash"})
    assert not lacking, f"the {profile} profile lacks {lacking}"
