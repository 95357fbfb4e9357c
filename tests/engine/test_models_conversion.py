"""Two processes asking for the bundled model at once on a fresh machine (parallel test workers,
two windows): both end with the same whole model, converted once."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SCRIPT = HERE / "convert_bundled.py"
HANG_S = 900  # only catches a conversion that hangs; never a speed check


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@pytest.mark.slow
@pytest.mark.skipif(
    sys.platform == "win32", reason="the lock is an flock; Windows relies on the rename alone"
)
def test_two_processes_converting_at_once_both_get_the_whole_model(tmp_path, bundled_dir):
    markers = tmp_path / "markers"
    markers.mkdir()
    env = dict(os.environ, FTSTUDIO_CACHE_DIR=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])  # this checkout's ftstudio
    procs = [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), str(markers), me, other],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me, other in (("a", "b"), ("b", "a"))
    ]
    outputs = [p.communicate(timeout=HANG_S) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, out[-2000:] + err[-3000:]

    folder = tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct"
    assert [out.strip() for out, _ in outputs] == [str(folder), str(folder)]
    # one conversion: the second process waited for the first and took its folder
    assert len(list(markers.glob("converting-*"))) == 1
    # whole, and the same model the shared cache holds; no temporary folder left behind
    assert _digest(folder / "model.safetensors") == _digest(bundled_dir / "model.safetensors")
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in bundled_dir.iterdir())
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".convert-")] == []

    from ftstudio.engine.models import load_tokenizer

    assert load_tokenizer(folder).eos_token == load_tokenizer(bundled_dir).eos_token
