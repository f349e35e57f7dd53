"""From validated ``SolveInputs`` to an allocation instance: similarities first, then numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._errors import InputError
from ..io import SolveInputs

__all__ = ["MAX_SIMILARITY_BYTES", "build_solve_instance", "similarity_matrix"]


MAX_SIMILARITY_BYTES = 2 * 2**30
"""The similarity matrix (public candidates x users, float64) may take this much memory; a
larger one is refused before any prompt is embedded or looked up (pass fewer
``--candidates``). It bounds the matrix only: the solver's option table comes on top."""


def similarity_matrix(inputs: SolveInputs, *, model: Any = None,
                      max_bytes: int = MAX_SIMILARITY_BYTES) -> np.ndarray:
    """The ``(publics, users)`` cosine matrix of ``inputs``.

    From the precomputed table when ``inputs`` has one (no torch is imported), else by embedding
    every distinct prompt once with ``model`` (an object with ``.encode(prompts)`` returning
    normalised rows, or ``.matrix(prompts)``; default a ``PromptSimilarity`` of
    ``inputs.similarity_model``). A model folder that cannot be loaded is an ``InputError`` on
    ``--similarity-model``; a matrix past ``max_bytes`` one on ``--candidates``.
    """
    from ..allocation import public_candidates

    prompts = [str(p) for p in inputs.users["prompt"]]
    publics = public_candidates(prompts, inputs.candidates)
    need = 8 * len(publics) * len(prompts)
    if need > max_bytes:
        fit = max_bytes // (8 * len(prompts))
        advice = (f"pass at most {fit:,} public prompts with --candidates" if fit
                  else "solve fewer users per call")
        raise InputError(
            f"{len(publics):,} public candidates x {len(prompts):,} users need "
            f"{_size(need)} for the similarity matrix (limit {_size(max_bytes)}): {advice}",
            file=(inputs.files.get("candidates") or inputs.files.get("users") or {}).get("file"),
            field="--candidates")
    if inputs.similarity_table is not None and model is None:
        return inputs.similarity_table.lookup(publics, prompts)
    if model is None:
        model = _load_model(inputs.similarity_model)
    unique = list(dict.fromkeys(publics + prompts))
    index = {t: i for i, t in enumerate(unique)}
    ip = np.array([index[t] for t in publics], dtype=int)
    iu = np.array([index[t] for t in prompts], dtype=int)
    if hasattr(model, "encode"):  # the rows only: never the distinct prompts squared
        emb = np.asarray(model.encode(unique), dtype=np.float64)
        return emb[ip] @ emb[iu].T
    full = np.asarray(model.matrix(unique), dtype=float)
    return full[np.ix_(ip, iu)]


def _size(n_bytes: int) -> str:
    if n_bytes >= 2**29:
        return f"{n_bytes / 2**30:.1f} GiB"
    return f"{n_bytes / 2**20:.1f} MiB" if n_bytes >= 2**20 else f"{n_bytes:,} bytes"


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


def build_solve_instance(inputs: SolveInputs, *, similarity: Any = None,
                         hand_over: bool = False) -> Any:
    """The allocation ``Instance`` of ``inputs``; ``similarity`` is a model object or a
    precomputed ``(publics, users)`` array (default: :func:`similarity_matrix`).
    ``hand_over``: the caller gives the array up (one it computed, e.g. with
    :func:`similarity_matrix`): it is clipped in place, never held twice."""
    from ..allocation import build_instance

    computed = similarity is None or hasattr(similarity, "matrix") or hasattr(similarity, "encode")
    if computed:
        sim = similarity_matrix(inputs, model=similarity)
    else:
        sim = np.asarray(similarity, dtype=float)
    owned = computed or hand_over
    return build_instance(
        inputs.users,
        inputs.servers,
        inputs.scenario,
        inputs.hiqm,
        similarity=sim,
        candidates=inputs.candidates,
        random_state=inputs.seed,
        copy=not owned,  # a matrix computed here is handed over, never held twice
    )
