"""profile-gpu on CPU with the smallest architecture: the JSON contract, power, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from his_opt.cli._profile import main as profile_cli
from his_opt.costs import GPUProfile
from his_opt.profiling import default_profile_name, profile_gpu
from his_opt.profiling._gpu import PowerMeter

FAST = dict(arch="test", resolution=32, batch_sizes=[1, 2], dtype="float32", warmup=1, repeats=2)


def test_profile_follows_the_contract(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    result = profile_gpu(out=out, **FAST)
    data = json.loads(out.read_text())
    assert data["schema"] == "his-opt/gpu-profile/1"
    assert data["kind"] == "measured"
    assert data["name"] == "test-32-fp32-cpu"
    assert (data["device"], data["model"], data["resolution"], data["dtype"]) == (
        "cpu",
        "test",
        32,
        "float32",
    )
    # Guided: 1 and 2 images are 2 and 4 rows; one unguided image (1 row) is measured too.
    assert data["rows"] == [1, 2, 4]
    for key in ("step_latency_s", "step_latency_iqr_s"):
        assert len(data[key]) == 3 and all(v >= 0 for v in data[key])
    assert all(v > 0 for v in data["step_latency_s"])
    assert data["vae_decode_s"] > 0 and data["text_encode_s"] > 0
    assert data["power_w"] is None and data["peak_memory_gib"] is None
    assert {"torch", "diffusers", "cuda"} <= set(data["software"])
    assert "random weights" in data["provenance"]
    profile = GPUProfile.load(out)
    assert profile.rows == (1, 2, 4) and profile.kind == "measured"
    assert result.complete and result.path == out
    assert "step ms" in result.table()


def test_unguided_rows_are_images(tmp_path: Path) -> None:
    result = profile_gpu(out=tmp_path / "p.json", guidance=False, **FAST)
    assert result.profile["rows"] == [1, 2]


def test_power_meter_mean_and_energy(tmp_path: Path) -> None:
    result = profile_gpu(out=tmp_path / "p.json", power_reader=lambda: 250.0, **FAST)
    data = result.profile
    assert data["power_w"] == pytest.approx(250.0)
    assert data["power_w_by_rows"] == pytest.approx([250.0] * 3)
    assert data["step_energy_j"] == pytest.approx([250.0 * t for t in data["step_latency_s"]])


def test_power_reading_failing_mid_run_warns_and_writes_null(tmp_path: Path) -> None:
    calls = {"n": 0}

    def flaky() -> float:
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("NVML_ERROR_GPU_IS_LOST")
        return 300.0

    with pytest.warns(UserWarning, match="power reading failed mid-run: NVML_ERROR_GPU_IS_LOST"):
        result = profile_gpu(out=tmp_path / "p.json", power_reader=flaky, **FAST)
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["power_w"] is None and data["step_energy_j"] is None
    assert len(data["step_latency_s"]) == 3
    assert result.warnings


def test_power_meter_without_reader() -> None:
    meter = PowerMeter(None)
    meter.start()
    assert meter.stop() is None


def test_default_names() -> None:
    assert (
        default_profile_name("sd3-medium", 1024, "float16", "NVIDIA H200")
        == "sd3-medium-1024-fp16-h200"
    )
    assert (
        default_profile_name("sd3-medium", 1024, "bfloat16", "NVIDIA H100 80GB HBM3")
        == "sd3-medium-1024-bf16-h100-80gb-hbm3"
    )


def test_cli_writes_the_profile(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli.json"
    code = profile_cli(
        ["profile-gpu", "--arch", "test", "--resolution", "32", "--batch-sizes", "1,2", "--dtype",
         "float32", "--warmup", "0", "--repeats", "1", "--no-guidance", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    assert json.loads(out.read_text())["rows"] == [1, 2]
    assert "rows" in capsys.readouterr().out


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bad.json"
    assert (
        profile_cli(["profile-gpu", "--model", str(tmp_path / "missing"), "--out", str(out)]) == 2
    )
    assert "model path does not exist" in capsys.readouterr().err
    assert profile_cli(["profile-gpu", "--arch", "sd4-huge", "--out", str(out)]) == 2
    assert "unknown arch 'sd4-huge'" in capsys.readouterr().err
    assert (
        profile_cli(["profile-gpu", "--arch", "test", "--resolution", "30", "--out", str(out)]) == 2
    )
    assert not out.exists()
    with pytest.raises(SystemExit):
        profile_cli(["profile-gpu", "--arch", "test", "--batch-sizes", "4,2"])
    with pytest.raises(ValueError, match="published"):
        profile_gpu(model=str(tmp_path), text_encoders="published")


def test_out_of_memory_keeps_what_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real CUDA out-of-memory cannot happen on the CPU test machine: stand in for the step
    # timer so that batches above 2 images raise the error torch raises on a full GPU.
    import torch

    from his_opt.profiling import _gpu

    real = _gpu._time_steps

    def timer(pipe, rows, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if rows > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(pipe, rows, *args, **kwargs)

    monkeypatch.setattr(_gpu, "_time_steps", timer)
    out = tmp_path / "oom.json"
    with pytest.warns(UserWarning, match=r"the largest batch that fits is 2 images \(4 rows\)"):
        code = profile_cli(
            ["profile-gpu", "--arch", "test", "--resolution", "32", "--batch-sizes", "1,2,4,8",
             "--dtype", "float32", "--warmup", "0", "--repeats", "1", "--out", str(out)]
        )  # fmt: skip
    assert code == 3  # incomplete: exit 1 is only solve's 'no feasible plan'
    data = json.loads(out.read_text())
    assert data["rows"] == [1, 2, 4]
    assert "Incomplete: a batch of 4 images (8 rows) does not fit" in data["provenance"]
