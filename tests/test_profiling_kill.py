"""Kill a profile-quality run with SIGKILL mid-sweep, resume it, and lose or repeat nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from his_opt.profiling import KEY_COLUMNS, load_sweep, run_quality_sweep
from his_opt.quality import build_tiny_clip
from his_opt.testing import build_tiny_sd3_pipeline

TINY = Path(__file__).resolve().parents[1] / "his_opt" / "data" / "sweeps" / "tiny_test.yaml"


def _data_lines(path: Path) -> int:
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_kill_then_resume(tmp_path: Path) -> None:
    model = build_tiny_sd3_pipeline(tmp_path / "sd3")
    clip = build_tiny_clip(tmp_path / "clip")
    spec = yaml.safe_load(TINY.read_text())
    spec["seeds"] = list(range(8))  # 16 blocks of 8 images: long enough to kill mid-run
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "quality.csv"
    cmd = [
        sys.executable, "-m", "his_opt.cli._profile", "profile-quality", str(sweep_file),
        "--model", str(model), "--clip-model", str(clip), "--out", str(out), "--quiet",
    ]  # fmt: skip
    # One thread each: the tiny model gains nothing from more, and a busy machine loses a lot.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 240
    try:
        while _data_lines(out) < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_rows = _data_lines(out)
    sweep = load_sweep(sweep_file)
    assert 8 <= killed_rows < sweep.n_images

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report = run_quality_sweep(
            sweep, out, model=str(model), clip_model=str(clip), progress=False
        )
    finally:
        torch.set_num_threads(threads)
    data = pd.read_csv(out, keep_default_na=False)
    keys = set(map(tuple, data[list(KEY_COLUMNS)].itertuples(index=False)))
    expected = {
        (b.public_prompt, p.prompt, b.seed, b.variant.name, x)
        for b in sweep.blocks()
        for p in b.personal
        for x in sweep.common_steps
    }
    assert len(data) == len(keys) == sweep.n_images
    assert keys == expected
    assert report.images_already_done == killed_rows
    assert report.images_written == sweep.n_images - killed_rows
