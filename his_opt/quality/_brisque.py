"""BRISQUE no-reference fidelity (lower is better) with the ``brisque`` package's LIVE SVR model.

``brisque`` 0.2.0 breaks under numpy 2 (its feature scaling calls ``float`` on 1-element arrays).
The subclass here fixes the scaling and skips a full-resolution pass whose result the package
discards; the features and scores are otherwise the package's own, bit for bit (its
``convolve2d`` is kept on purpose: BRISQUE's left/right variance split counts exact zeros, so a
faster convolution with other rounding moves scores of flat images by tenths of a point).
Scoring holds the GIL, so ``n_jobs > 1`` scores in worker processes. Nothing is downloaded: the
model files ship inside the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._image import as_rgb_array

__all__ = ["BrisqueScorer"]

_MIN_SIDE = 16


def _scalar(value: Any) -> float:
    arr = np.asarray(value, dtype=np.float64)
    if arr.size != 1:
        raise ValueError(f"a BRISQUE feature must be a scalar, got shape {arr.shape}.")
    return float(arr.reshape(()))


def _live_model_class() -> type:
    from brisque import BRISQUE

    class _LiveBrisque(BRISQUE):
        """The package's BRISQUE with numpy-2-safe scaling and OpenCV convolutions."""

        def scale_features(self, features: Any) -> np.ndarray:
            f = np.array([_scalar(v) for v in features])
            lo = np.array([_scalar(v) for v in self.scale_params["min_"]])
            hi = np.array([_scalar(v) for v in self.scale_params["max_"]])
            return -1.0 + 2.0 / (hi - lo) * (f - lo)

        def score(self, img: Any) -> float:
            import cv2
            import skimage.color

            # The package also computes MSCN coefficients of the full image here and drops them.

            gray = skimage.color.rgb2gray(self.remove_alpha_channel(img))
            features = self.calculate_brisque_features(gray, kernel_size=7, sigma=7 / 6)
            half = cv2.resize(gray, None, fx=1 / 2, fy=1 / 2, interpolation=cv2.INTER_CUBIC)
            half_features = self.calculate_brisque_features(half, kernel_size=7, sigma=7 / 6)
            return float(
                self.calculate_image_quality_score(np.concatenate((features, half_features)))
            )

    return _LiveBrisque


_WORKER_MODEL: Any = None


def _worker_score(arr: np.ndarray) -> float:
    global _WORKER_MODEL
    if _WORKER_MODEL is None:
        _WORKER_MODEL = _live_model_class()()
    return _WORKER_MODEL.score(arr)


class BrisqueScorer:
    """Score images with BRISQUE (LIVE model; about 20-30 for a clean photo, higher is worse).

    ``n_jobs > 1`` scores lists of images in that many worker processes (started on first use,
    with the spawn method so a CUDA context in the parent is never forked); call ``close()`` or
    use the scorer as a context manager to stop them.
    """

    def __init__(self, n_jobs: int = 1) -> None:
        if n_jobs < 1:
            raise ValueError(f"`n_jobs` must be at least 1, got {n_jobs}.")
        self.n_jobs = n_jobs
        self._model: Any = None
        self._pool: Any = None

    def __enter__(self) -> BrisqueScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _get(self) -> Any:
        if self._model is None:
            self._model = _live_model_class()()
        return self._model

    @staticmethod
    def _checked(image: Any) -> np.ndarray:
        arr = as_rgb_array(image)
        if min(arr.shape[:2]) < _MIN_SIDE:
            raise ValueError(
                f"BRISQUE needs images of at least {_MIN_SIDE}x{_MIN_SIDE} pixels, "
                f"got {arr.shape[1]}x{arr.shape[0]}."
            )
        return arr

    def score(self, image: Any) -> float:
        """BRISQUE score of one image (PIL or HxWx3 array)."""
        return self._get().score(self._checked(image))

    def scores(self, images: Sequence[Any]) -> np.ndarray:
        """BRISQUE scores of several images, in order."""
        arrays = [self._checked(im) for im in images]
        if self.n_jobs == 1 or len(arrays) < 2:
            model = self._get()
            return np.array([model.score(a) for a in arrays], dtype=np.float64)
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                self.n_jobs, mp_context=multiprocessing.get_context("spawn")
            )
        return np.array(list(self._pool.map(_worker_score, arrays)), dtype=np.float64)
