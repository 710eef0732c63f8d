"""The default local store is the user's own: private, and not a name Python can import."""
from __future__ import annotations

import getpass
import os

import pytest

from deepflash.io.store import private_dir


def test_the_default_store_is_created_private_and_refused_when_open_to_others(tmp_path):
    path = tmp_path / f"deepflash-store-{getpass.getuser()}"
    private_dir(str(path))
    assert (os.stat(path).st_mode & 0o777) == 0o700
    private_dir(str(path))  # an existing private one is fine
    os.chmod(path, 0o755)
    with pytest.raises(PermissionError, match=r"has mode 0o755, open to other users; expected 0o700"):
        private_dir(str(path))
    assert not path.name.isidentifier()  # never taken for a namespace package named like the package


def test_a_default_store_owned_by_another_user_is_refused(monkeypatch, tmp_path):
    path = tmp_path / "theirs"
    path.mkdir(mode=0o700)
    real_uid = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: real_uid + 1)
    with pytest.raises(PermissionError, match=rf"belongs to uid {real_uid}, not to you"):
        private_dir(str(path))
