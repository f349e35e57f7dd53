"""Quality metrics: CLIP prompt alignment, CLIP image similarity, BRISQUE fidelity, and the
prompt similarity (all-MiniLM-L6-v2 cosine, from :mod:`his_opt.similarity`) they are set against.
"""

from ..similarity import PromptSimilarity
from ._brisque import BrisqueScorer
from ._clip import DEFAULT_CLIP_MODEL, ClipScorer
from ._tiny import build_tiny_clip

__all__ = [
    "DEFAULT_CLIP_MODEL",
    "BrisqueScorer",
    "ClipScorer",
    "PromptSimilarity",
    "build_tiny_clip",
]
