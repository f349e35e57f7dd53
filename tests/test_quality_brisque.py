"""BRISQUE: ranks an image above degraded copies of it, and matches the brisque package exactly."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from his_opt.quality import BrisqueScorer


def _pink(n: int, rng: np.random.Generator, beta: float = 1.6) -> np.ndarray:
    """Noise with a 1/f^beta power spectrum (the spectrum of natural scenes), unit variance."""
    f2 = np.fft.fftfreq(n)[:, None] ** 2 + np.fft.fftfreq(n)[None, :] ** 2
    f2[0, 0] = 1.0
    amp = f2 ** (-beta / 2)
    amp[0, 0] = 0.0
    field = np.real(np.fft.ifft2(amp * (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n)))))
    return (field - field.mean()) / field.std()


def natural_image(n: int = 256, seed: int = 0) -> Image.Image:
    """A smooth gradient with natural-scene texture and a few flat shapes."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n] / n
    gradient = np.stack([0.45 + 0.1 * x, 0.5 - 0.1 * y, 0.5 + 0.05 * x * y], -1)
    lum = _pink(n, rng)
    arr = gradient + 0.12 * lum[:, :, None] + 0.05 * np.stack([_pink(n, rng) for _ in range(3)], -1)
    img = Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(8):
        color = tuple(int(v) for v in rng.integers(30, 225, 3))
        x0, y0 = (int(v) for v in rng.integers(0, n - 40, 2))
        w, h = (int(v) for v in rng.integers(20, n // 3, 2))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape([x0, y0, x0 + w, y0 + h], fill=color)
    textured = np.asarray(img) / 255 + 0.025 * np.stack([_pink(n, rng) for _ in range(3)], -1)
    return Image.fromarray((np.clip(textured, 0, 1) * 255).astype(np.uint8))


def degraded(clean: Image.Image) -> dict[str, Image.Image]:
    rng = np.random.default_rng(1)
    arr = np.asarray(clean).astype(float)
    noise = Image.fromarray(np.clip(arr + rng.normal(0, 25, arr.shape), 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    clean.save(buf, "JPEG", quality=5)
    return {
        "noise": noise,
        "blur": clean.filter(ImageFilter.GaussianBlur(3)),
        "jpeg": Image.open(io.BytesIO(buf.getvalue())).convert("RGB"),
    }


@pytest.fixture(scope="module")
def scorer() -> BrisqueScorer:
    return BrisqueScorer()


@pytest.mark.parametrize("seed", [0, 1])
def test_clean_image_scores_better_than_each_degraded_copy(
    scorer: BrisqueScorer, seed: int
) -> None:
    clean = natural_image(seed=seed)
    clean_score = scorer.score(clean)
    # Measured: clean about 18; noise sigma 25 about 62, blur radius 3 about 85, JPEG q5 96-97.
    assert 5 < clean_score < 40
    for name, image in degraded(clean).items():
        score = scorer.score(image)
        assert score > clean_score + 15, (name, score, clean_score)


def test_matches_the_brisque_package_with_only_the_scaling_fixed(scorer: BrisqueScorer) -> None:
    from brisque import BRISQUE

    class ScalingFixed(BRISQUE):
        def scale_features(self, features):  # noqa: ANN001, ANN202
            f = np.array([np.asarray(v, dtype=float).item() for v in features])
            lo = np.array([float(v) for v in self.scale_params["min_"]])
            hi = np.array([float(v) for v in self.scale_params["max_"]])
            return -1 + 2.0 / (hi - lo) * (f - lo)

    reference = ScalingFixed()
    clean = natural_image(n=96, seed=3)
    for image in [clean, *degraded(clean).values()]:
        assert scorer.score(image) == pytest.approx(reference.score(np.asarray(image)), abs=1e-9)


def test_scores_accepts_arrays_and_keeps_order(scorer: BrisqueScorer) -> None:
    clean = natural_image(n=96, seed=4)
    images = [np.asarray(clean), degraded(clean)["jpeg"], np.asarray(clean) / 255.0]
    scores = scorer.scores(images)
    assert scores.shape == (3,)
    assert scores[0] == pytest.approx(scores[2])
    assert scores[1] == pytest.approx(scorer.score(images[1]))


def test_worker_processes_give_the_same_scores() -> None:
    clean = natural_image(n=96, seed=5)
    images = [clean, *degraded(clean).values()]
    with BrisqueScorer(n_jobs=2) as parallel:
        got = parallel.scores(images)
    assert np.allclose(got, BrisqueScorer().scores(images), atol=1e-12)


def test_bad_images_are_rejected(scorer: BrisqueScorer) -> None:
    with pytest.raises(ValueError, match="at least 16x16"):
        scorer.score(np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        scorer.score(np.full((32, 32, 3), 2.0))
    with pytest.raises(ValueError, match="n_jobs"):
        BrisqueScorer(n_jobs=0)
