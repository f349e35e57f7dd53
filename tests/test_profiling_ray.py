"""profile-quality over a local Ray instance (CPU): same rows as a local run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from his_opt.profiling import KEY_COLUMNS, load_sweep, run_quality_sweep
from his_opt.quality import build_tiny_clip
from his_opt.testing import build_tiny_sd3_pipeline

TINY = Path(__file__).resolve().parents[1] / "his_opt" / "data" / "sweeps" / "tiny_test.yaml"


@pytest.mark.slow
def test_ray_local_matches_a_local_run(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    from his_opt.profiling._ray import connect_ray

    models = {
        "model": str(build_tiny_sd3_pipeline(tmp_path / "sd3")),
        "clip_model": str(build_tiny_clip(tmp_path / "clip")),
    }
    sweep = load_sweep(TINY)
    local = run_quality_sweep(
        sweep, tmp_path / "local.csv", progress=False, brisque=False, **models
    )
    connect_ray("local", num_cpus=2)
    try:
        with pytest.warns(UserWarning, match="no GPUs"):
            remote = run_quality_sweep(
                sweep,
                tmp_path / "ray.csv",
                progress=False,
                brisque=False,
                ray_address="local",
                **models,
            )
        workers = set(pd.read_csv(tmp_path / "ray.csv")["worker"])
    finally:
        ray.shutdown()
    assert remote.images_written == local.images_written == sweep.n_images
    assert remote.engine_rows == local.engine_rows
    a = pd.read_csv(tmp_path / "local.csv").sort_values(list(KEY_COLUMNS)).reset_index(drop=True)
    b = pd.read_csv(tmp_path / "ray.csv").sort_values(list(KEY_COLUMNS)).reset_index(drop=True)
    assert a[list(KEY_COLUMNS)].equals(b[list(KEY_COLUMNS)])
    # Ray workers run torch single-threaded: other reduction orders, same numbers to ~1e-5.
    for col in ("clip_alignment", "clip_image_similarity", "similarity", "block_rows"):
        assert np.allclose(a[col], b[col], atol=5e-4), col
    # The blocks ran in Ray worker processes, not in this one.
    assert set(pd.read_csv(tmp_path / "local.csv")["worker"]).isdisjoint(workers)
