"""The test-only crash hook's spec: which rank, which epoch, and which process it kills."""
from __future__ import annotations

import pytest

from deepflash.worker.progress import crash_hook, executor_jvm
from deepflash.worker.settings import CRASH_ENV


def test_the_spec_picks_the_rank_the_epoch_and_the_process_to_kill(monkeypatch, tmp_path):
    monkeypatch.setenv(CRASH_ENV, f"rank=1,epoch=4,marker={tmp_path / 'm'},kill=executor")
    assert crash_hook(0) is None
    hook = crash_hook(1)
    assert (hook.epoch, hook.marker, hook.kill) == (4, str(tmp_path / "m"), "executor")
    monkeypatch.setenv(CRASH_ENV, f"rank=0,epoch=2,marker={tmp_path / 'm'}")
    assert crash_hook(0).kill == "self"


def test_a_bad_spec_names_the_variable_and_the_expected_form(monkeypatch):
    monkeypatch.setenv(CRASH_ENV, "rank=1,epoch=4,marker=/m,kill=driver")
    with pytest.raises(ValueError, match=rf"{CRASH_ENV} == .*kill=driver.*must look like"):
        crash_hook(1)


def test_executor_jvm_refuses_a_process_that_no_executor_runs():
    with pytest.raises(RuntimeError, match="kill=executor, but process .* runs under no executor JVM"):
        executor_jvm()
