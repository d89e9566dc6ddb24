"""A workdir koemo cannot write to: `koemo train` and `koemo prepare` stop at once with one line
naming the folder (exit 1, no traceback). As root, permissions bind only without the
capabilities that override them, so the command runs with those dropped (setpriv)."""
import os
import shutil
import stat
import subprocess
import sys

import pytest


def _without_override() -> list[str]:
    """The prefix that makes file permissions bind for the command (none needed unless root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root without setpriv (util-linux): cannot drop CAP_DAC_OVERRIDE"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


def _read_only(root) -> None:
    for folder, dirs, files in os.walk(root):
        for name in files:
            os.chmod(os.path.join(folder, name), stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP
                 | stat.S_IROTH | stat.S_IXOTH)


def _writable(root) -> None:
    for folder, dirs, files in os.walk(root):
        os.chmod(folder, stat.S_IRWXU)
        for name in files:
            os.chmod(os.path.join(folder, name), stat.S_IRUSR | stat.S_IWUSR)


@pytest.fixture
def read_only_workdir(tmp_path, tiny_workdir):
    work = tmp_path / "shared" / "work"
    shutil.copytree(tiny_workdir, work, ignore=shutil.ignore_patterns("runs"))
    _read_only(tmp_path / "shared")
    yield work
    _writable(tmp_path / "shared")


def _koemo(*args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([*_without_override(), sys.executable, "-m", "koemo", *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("command", ["train", "prepare"])
def test_read_only_workdir_is_one_line_naming_it(command, read_only_workdir, tiny_corpus):
    if command == "train":
        result = _koemo("train", "audio", "--workdir", str(read_only_workdir), "--config", "tiny",
                        "--no-progress")
        named = read_only_workdir
    else:
        result = _koemo("prepare", "--data", str(tiny_corpus), "--workdir",
                        str(read_only_workdir / "again"), "--config", "tiny", "--no-progress")
        named = read_only_workdir           # the folder `again` would be made in
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"koemo {command}: error: {named}: cannot write here "
                               "(Permission denied)"), lines[0]
    assert not (read_only_workdir / "runs").exists()
