"""Settings: the instance's own secret key, made once however many processes start."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_processes_starting_at_once_share_one_instance_key(tmp_path):
    """xdist's workers, gunicorn's: each made its own key, or read a half one."""
    command = [
        sys.executable,
        "-c",
        "import config; print(config._instance_secret_key())",
    ]
    env = {**os.environ, "INSTANCE_DIR": str(tmp_path)}
    started = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    keys = {process.communicate(timeout=60)[0].strip() for process in started}
    assert [process.returncode for process in started] == [0] * 8
    assert len(keys) == 1 and len(keys.pop()) == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret_key"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
