"""From validated ``SolveInputs`` to an allocation instance: similarities first, then numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._errors import InputError
from ..io import SolveInputs

__all__ = ["build_solve_instance", "similarity_matrix"]


def similarity_matrix(inputs: SolveInputs, *, model: Any = None) -> np.ndarray:
    """The ``(publics, users)`` cosine matrix of ``inputs``.

    From the precomputed table when ``inputs`` has one (no torch is imported), else by embedding
    every distinct prompt once with ``model`` (an object with ``.matrix(prompts)``; default a
    ``PromptSimilarity`` of ``inputs.similarity_model``). A model folder that cannot be loaded is
    an ``InputError`` on ``--similarity-model``.
    """
    from ..allocation import public_candidates

    prompts = [str(p) for p in inputs.users["prompt"]]
    publics = public_candidates(prompts, inputs.candidates)
    if inputs.similarity_table is not None and model is None:
        return inputs.similarity_table.lookup(publics, prompts)
    if model is None:
        model = _load_model(inputs.similarity_model)
    unique = list(dict.fromkeys(publics + prompts))
    full = np.asarray(model.matrix(unique), dtype=float)
    index = {t: i for i, t in enumerate(unique)}
    ip = np.array([index[t] for t in publics], dtype=int)
    iu = np.array([index[t] for t in prompts], dtype=int)
    return full[np.ix_(ip, iu)]


def _load_model(folder: str | None) -> Any:
    from ..similarity import PromptSimilarity

    model = PromptSimilarity(model=folder)
    try:
        _ = model.dimension  # load now: a bad folder is an input error, not a traceback later
    except Exception as err:  # any failure to load the named model is a bad input
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(
            f"cannot load the similarity model: {first}",
            file=folder or "all-MiniLM-L6-v2",
            field="--similarity-model",
        ) from err
    return model


def build_solve_instance(inputs: SolveInputs, *, similarity: Any = None) -> Any:
    """The allocation ``Instance`` of ``inputs``; ``similarity`` is a model object or a
    precomputed ``(publics, users)`` array (default: :func:`similarity_matrix`)."""
    from ..allocation import build_instance

    if similarity is None or hasattr(similarity, "matrix"):
        sim = similarity_matrix(inputs, model=similarity)
    else:
        sim = np.asarray(similarity, dtype=float)
    return build_instance(
        inputs.users,
        inputs.servers,
        inputs.scenario,
        inputs.hiqm,
        similarity=sim,
        candidates=inputs.candidates,
        random_state=inputs.seed,
    )
