"""numba's kernel cache lives outside the installed package, and a read-only install with an
unwritable home still imports and runs (the cache then falls back to the temp folder)."""

import os
import subprocess
import sys
from pathlib import Path

import pigment_connect

PACKAGE = Path(pigment_connect.__file__).resolve().parent

PROBE = """
import os, pathlib, numba, numpy as np
import pigment_connect
from pigment_connect.graph import global_metrics
global_metrics(np.ones((5, 5)) - np.eye(5))            # compiles (and caches) numba kernels
print(os.environ["NUMBA_CACHE_DIR"]); print(numba.config.CACHE_DIR)
print(sum(1 for _ in pathlib.Path(os.environ["NUMBA_CACHE_DIR"]).rglob("*.nbi")))
"""


def _probe(env_changes: dict, tmp_path: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, cwd=tmp_path,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()


def _package_index_files() -> set[Path]:
    return set(PACKAGE.rglob("*.nbi"))


def test_cache_goes_to_the_user_cache_folder(tmp_path):
    before = _package_index_files()
    env_dir, config_dir, n_index = _probe({"HOME": str(tmp_path / "home")}, tmp_path)
    expected = tmp_path / "home" / ".cache" / "pigment_connect" / "numba"
    assert Path(env_dir) == expected and Path(config_dir) == expected
    assert int(n_index) > 0  # the kernels were cached there
    assert _package_index_files() <= before  # nothing new inside the package


def test_user_choice_is_kept(tmp_path):
    env_dir, config_dir, _ = _probe({"HOME": str(tmp_path / "home"), "NUMBA_CACHE_DIR": str(tmp_path / "mine")},
                                    tmp_path)
    assert Path(env_dir) == tmp_path / "mine" == Path(config_dir)


def test_unwritable_home_falls_back_to_the_temp_folder(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file: nothing can be created below it, not even by root")
    (tmp_path / "tmp").mkdir()
    env_dir, _, n_index = _probe({"HOME": str(blocker / "home"), "TMPDIR": str(tmp_path / "tmp")}, tmp_path)
    assert Path(env_dir).parent == tmp_path / "tmp" and Path(env_dir).name.startswith("pigment_connect-numba-")
    assert int(n_index) > 0
