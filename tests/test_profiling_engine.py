"""The sweep engine computes, for every (prompt, x), what the hybrid pipeline computes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from his_opt.inference import HybridSD3Pipeline, hybrid_rows
from his_opt.profiling import per_image_rows, run_branches, sweep_rows
from his_opt.testing import build_tiny_sd3_pipeline


@pytest.fixture(scope="module")
def pipe(tmp_path_factory: pytest.TempPathFactory) -> HybridSD3Pipeline:
    folder = build_tiny_sd3_pipeline(tmp_path_factory.mktemp("sd3"))
    pipe = HybridSD3Pipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


PUBLIC = "a photo of a dog in a park"
PROMPTS = ["a corgi on a beach", "a cat on a sofa", "a red car at night"]
NEGATIVES = ["blurry", None, "a dog"]


@pytest.mark.parametrize(
    ("public_scale", "scale", "negatives"),
    [(2.0, 8.0, NEGATIVES), (7.0, 7.0, None), (1.0, 5.0, None)],
)
def test_branches_equal_one_pipeline_call_per_x(
    pipe: HybridSD3Pipeline, public_scale: float, scale: float, negatives: list | None
) -> None:
    total, xs = 6, [0, 2, 5]
    result = run_branches(
        pipe,
        public_prompt=PUBLIC,
        prompts=PROMPTS,
        negative_prompts=negatives,
        common_steps=xs,
        num_inference_steps=total,
        public_guidance_scale=public_scale,
        guidance_scale=scale,
        seed=3,
        max_batch_size=4,
    )
    assert set(result.images) == {(p, x) for p in range(3) for x in xs}
    rows_per_call = 0
    for x in xs:
        out = pipe(
            public_prompt=PUBLIC,
            prompts=PROMPTS,
            negative_prompts=negatives,
            common_steps=x,
            num_inference_steps=total,
            public_guidance_scale=public_scale,
            guidance_scale=scale,
            generator=torch.Generator("cpu").manual_seed(3),
            output_type="np",
        )
        rows_per_call += out.transformer_rows
        for p in range(3):
            expected = (out.images[p] * 255).round().astype(np.uint8)
            assert np.abs(expected.astype(int) - result.images[(p, x)].astype(int)).max() <= 1
    # The images are not trivial: sharing changes them, and prompts differ.
    assert not np.array_equal(result.images[(0, 0)], result.images[(0, 5)])
    assert not np.array_equal(result.images[(0, 2)], result.images[(1, 2)])
    # Work: the public phase once, every branch from its x.
    assert result.transformer_rows == sweep_rows(3, xs, total, public_scale, scale)
    assert rows_per_call == sum(hybrid_rows(3, x, total, public_scale, scale) for x in xs)
    assert result.transformer_rows < rows_per_call
    per_image = sum(per_image_rows(x, total, public_scale, scale) for x in xs) * 3
    assert result.transformer_rows < per_image


def test_batch_size_does_not_change_images(pipe: HybridSD3Pipeline) -> None:
    kwargs = dict(
        public_prompt=PUBLIC,
        prompts=PROMPTS[:2],
        common_steps=[0, 1, 3],
        num_inference_steps=4,
        public_guidance_scale=2.0,
        guidance_scale=8.0,
        seed=0,
    )
    one = run_branches(pipe, max_batch_size=1, **kwargs)
    all_at_once = run_branches(pipe, max_batch_size=None, **kwargs)
    assert one.transformer_calls > all_at_once.transformer_calls
    for key, image in one.images.items():
        assert np.abs(image.astype(int) - all_at_once.images[key].astype(int)).max() <= 1


def test_bad_arguments(pipe: HybridSD3Pipeline) -> None:
    base = dict(
        public_prompt=PUBLIC, prompts=PROMPTS, num_inference_steps=4, public_guidance_scale=2.0
    )
    with pytest.raises(ValueError, match="within 0..3"):
        run_branches(pipe, common_steps=[4], guidance_scale=7.0, **base)
    with pytest.raises(ValueError, match="must match"):
        run_branches(pipe, common_steps=[0], guidance_scale=7.0, negative_prompts=["x"], **base)
    with pytest.raises(ValueError, match="guidance_scale` > 1"):
        run_branches(
            pipe, common_steps=[0], guidance_scale=1.0, negative_prompts=["x", None, None], **base
        )


def test_rows_formulas() -> None:
    assert per_image_rows(9, 28, 2.0, 8.0) == 56
    assert per_image_rows(9, 28, 1.0, 8.0) == 9 + 38
    assert sweep_rows(4, range(28), 28, 2.0, 8.0) == 27 * 2 + 4 * 406 * 2
