"""Result files are written with the user's umask (not mkstemp's 0600), and ``dlbench train``
refuses to replace an existing result unless asked (issues 15 and 22)."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from dlbench.cli import main
from dlbench.execution.results import write_atomic


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_result_file_mode_follows_the_umask(tmp_path, umask, mode) -> None:
    old = os.umask(umask)
    try:
        write_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == mode
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}


def test_train_refuses_to_replace_a_result_without_force(tmp_path, capsys) -> None:
    out = tmp_path / "train.json"
    out.write_text('{"kept": true}\n')
    code = main(["train", "--model", "mlp", "--dataset", "synthetic", "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "dlbench: error:" in err and "--force" in err and str(out) in err
    assert json.loads(out.read_text()) == {"kept": True}  # nothing lost


def test_train_out_that_is_a_folder_is_refused(tmp_path, capsys) -> None:
    code = main(["train", "--model", "mlp", "--dataset", "synthetic", "--out", str(tmp_path)])
    assert code == 2
    assert "a folder" in capsys.readouterr().err
