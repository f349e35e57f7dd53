"""CLIP scores with a tiny CLIP built offline and loaded back from disk."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from his_opt._errors import InputError
from his_opt.quality import ClipScorer, build_tiny_clip


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("clip"))


@pytest.fixture(scope="module")
def scorer(clip_dir: Path) -> ClipScorer:
    return ClipScorer(str(clip_dir), device="cpu", batch_size=2)


def _images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(rng.random((40, 52, 3)) * 255).astype(np.uint8) for _ in range(n)]


def test_alignment_equals_the_models_own_normalised_embeddings(
    clip_dir: Path, scorer: ClipScorer
) -> None:
    from transformers import CLIPModel, CLIPProcessor

    images = _images(3)
    prompts = [
        "a photo of a dog in the park",
        "a red car",
        "a cat sleeping on a sofa near a window",
    ]
    got = scorer.alignment(images, prompts)

    model = CLIPModel.from_pretrained(clip_dir).eval()
    processor = CLIPProcessor.from_pretrained(clip_dir)
    inputs = processor(text=prompts, images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    # CLIPModel's forward returns normalised embeddings; the matched pairs are the diagonal.
    expected = (out.image_embeds @ out.text_embeds.T).diagonal().numpy()
    assert got.shape == (3,)
    assert np.allclose(got, expected, atol=1e-5)
    assert np.all(np.abs(got) <= 1 + 1e-6)
    # Not a constant: different prompts give different cosines.
    assert np.ptp(got) > 1e-4


def test_batching_does_not_change_scores(clip_dir: Path, scorer: ClipScorer) -> None:
    images = _images(5, seed=1)
    prompts = [f"a photo of a dog number {i}" for i in range(5)]
    one_batch = ClipScorer(str(clip_dir), device="cpu", batch_size=16)
    assert np.allclose(
        scorer.alignment(images, prompts), one_batch.alignment(images, prompts), atol=1e-5
    )


def test_image_similarity(scorer: ClipScorer) -> None:
    a = _images(2, seed=2)
    b = _images(2, seed=3)
    same = scorer.image_similarity(a, a)
    assert np.allclose(same, 1.0, atol=1e-5)
    other = scorer.image_similarity(a, b)
    assert np.all(other < 1.0 - 1e-4)
    ea, eb = scorer.image_embeddings(a), scorer.image_embeddings(b)
    assert np.allclose(other, (ea * eb).sum(axis=1), atol=1e-6)


def test_long_prompts_are_truncated_with_a_warning(scorer: ClipScorer) -> None:
    image = _images(1, seed=4)
    long_prompt = "a photo of a dog in the park " * 30
    assert scorer.max_tokens == 77
    with pytest.warns(UserWarning, match="longer than CLIP's 77 tokens were truncated"):
        cut = scorer.alignment(image, [long_prompt])
    # Truncation keeps the first 77 tokens: appending more text changes nothing.
    with pytest.warns(UserWarning):
        longer = scorer.alignment(image, [long_prompt + " and a red car on the street"])
    assert cut == pytest.approx(longer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        scorer.alignment(image, ["a short prompt"])


def test_bad_input(tmp_path: Path, scorer: ClipScorer) -> None:
    with pytest.raises(InputError, match="does not exist"):
        ClipScorer(str(tmp_path / "missing")).alignment(_images(1), ["x"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="cannot load"):
        ClipScorer(str(tmp_path / "empty")).alignment(_images(1), ["x"])
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        scorer.alignment(_images(2), ["x"])
    with pytest.raises(ValueError, match="single string"):
        scorer.text_embeddings("a dog")
