"""Accept images as PIL images or numpy arrays (HxWx3 uint8, or float in [0, 1])."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_rgb_array", "as_rgb_pil"]


def as_rgb_array(image: Any) -> np.ndarray:
    """An HxWx3 uint8 array from a PIL image or an array (gray, RGB or RGBA; uint8 or [0, 1] float)."""
    if hasattr(image, "convert") and hasattr(image, "size"):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError(f"an image must be HxW, HxWx3 or HxWx4, got shape {arr.shape}.")
    arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
            raise ValueError("a float image must hold finite values in [0, 1].")
        return np.ascontiguousarray(np.round(arr * 255).astype(np.uint8))
    raise ValueError(f"unsupported image dtype {arr.dtype}; use uint8 or float in [0, 1].")


def as_rgb_pil(image: Any) -> Any:
    """A PIL RGB image from a PIL image or an array."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image if image.mode == "RGB" else image.convert("RGB")
    return Image.fromarray(as_rgb_array(image), mode="RGB")
