"""Synthetic inputs for tests, benchmarks and examples: varied prompts from subject and attribute
templates (seeded), the canonical users table for them, a clustered cosine matrix that needs no
model, and a small logistic HIQM for any number of steps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..scenario import Scenario
from ._instance import USER_TABLE_COLUMNS

__all__ = [
    "SUBJECTS",
    "cluster_similarity",
    "generate_prompts",
    "synthetic_users",
    "tiny_instance",
    "toy_hiqm",
    "toy_slow_profile",
]

SUBJECTS: dict[str, tuple[str, ...]] = {
    "dog": ("a golden retriever", "a small terrier", "a husky puppy", "a black labrador",
            "a corgi", "a dalmatian"),
    "cat": ("a tabby cat", "a fluffy white kitten", "a black cat", "a siamese cat",
            "a maine coon", "a sleeping ginger cat"),
    "castle": ("a medieval castle", "a ruined stone fortress", "a fairy-tale castle",
               "a castle on a cliff", "a japanese castle"),
    "car": ("a red sports car", "a vintage convertible", "an electric sedan", "a rusty pickup truck",
            "a rally car"),
    "city": ("a busy city street", "a neon-lit downtown alley", "a quiet european square",
             "a skyline of skyscrapers", "a harbour town"),
    "mountain": ("a snowy mountain peak", "an alpine valley", "a volcanic ridge",
                 "a mountain lake", "a desert canyon"),
    "portrait": ("a portrait of an old fisherman", "a portrait of a young woman",
                 "a portrait of a knight", "a portrait of a scientist", "a portrait of a child"),
    "food": ("a bowl of ramen", "a stack of pancakes", "a basket of fresh fruit",
             "a slice of chocolate cake", "a pizza"),
    "space": ("an astronaut floating in orbit", "a spaceship over a red planet",
              "a nebula with bright stars", "a lunar base"),
    "flower": ("a field of sunflowers", "a single red rose", "a bouquet of tulips",
               "cherry blossoms"),
}
_SETTINGS = ("in a park", "on a beach", "in the snow", "at sunset", "in a forest", "under the rain",
             "at night", "in a studio", "in autumn", "at dawn", "in the fog")
_STYLES = ("photograph", "oil painting", "watercolor", "digital art", "anime style",
           "pencil sketch", "3d render", "studio ghibli style", "cinematic still")
_DETAILS = ("highly detailed", "soft lighting", "dramatic lighting", "8k", "bokeh",
            "pastel colors", "wide angle", "golden hour", "sharp focus", "muted tones")


def generate_prompts(
    n: int, random_state: int | None = None, subjects: Sequence[str] | None = None
) -> list[tuple[str, str]]:
    """``n`` (prompt, subject) pairs: a subject phrase, an optional setting, a style and 0-3
    details, drawn by a seeded generator."""
    rng = np.random.default_rng(random_state)
    names = list(subjects or SUBJECTS)
    out = []
    for _ in range(n):
        subject = names[int(rng.integers(len(names)))]
        phrases = SUBJECTS[subject]
        text = phrases[int(rng.integers(len(phrases)))]
        if rng.random() < 0.7:
            text += " " + _SETTINGS[int(rng.integers(len(_SETTINGS)))]
        extras = [_STYLES[int(rng.integers(len(_STYLES)))]]
        extras += list(rng.choice(_DETAILS, size=int(rng.integers(0, 4)), replace=False))
        out.append((text + ", " + ", ".join(extras), subject))
    return out


def synthetic_users(
    prompts: Sequence[str],
    scenario: Scenario | None = None,
    *,
    subjects: Sequence[str | None] | None = None,
    deadline_s: Sequence[float] | float | None = None,
    min_quality: Sequence[float] | float | None = None,
    device_jitter: float = 0.0,
    random_state: int | None = None,
) -> pd.DataFrame:
    """The canonical users table for ``prompts`` with the scenario's device and channel figures
    (``device_jitter`` scales each device's step time by a uniform factor in ``1 +- jitter``)."""
    sc = scenario or Scenario()
    n = len(prompts)
    rng = np.random.default_rng(random_state)
    step = sc.device_step_s * (1 + device_jitter * rng.uniform(-1, 1, n))

    def col(v: Sequence[float] | float | None) -> np.ndarray:
        if v is None:
            return np.full(n, np.nan)
        return np.broadcast_to(np.asarray(v, dtype=float), (n,)).copy()

    frame = pd.DataFrame({
        "user_id": [f"u{i + 1}" for i in range(n)],
        "prompt": list(prompts),
        "negative_prompt": [None] * n,
        "device_step_s": step,
        "device_step_energy_j": step * sc.device_power_w,
        "bandwidth_hz": sc.bandwidth_hz,
        "tx_power_w": sc.tx_power_w,
        "channel_gain": sc.channel_gain,
        "deadline_s": col(deadline_s),
        "min_quality": col(min_quality),
        "subject": list(subjects) if subjects is not None else [None] * n,
    })
    return frame[list(USER_TABLE_COLUMNS)]


def cluster_similarity(
    n: int, n_clusters: int, *, spread: float = 0.6, random_state: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A cosine matrix of ``n`` unit vectors drawn around ``n_clusters`` centres (no model
    needed), and the cluster label of each."""
    rng = np.random.default_rng(random_state)
    dim = 16
    centres = rng.normal(size=(n_clusters, dim))
    labels = rng.integers(n_clusters, size=n)
    emb = centres[labels] + spread * rng.normal(size=(n, dim))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    return np.clip(emb @ emb.T, -1.0, 1.0), labels


def toy_hiqm(total_steps: int):  # noqa: ANN201
    """A small interpolated-logistic HIQM for ``total_steps`` steps, shaped like the reference
    fit (higher similarity: flatter curve, higher floor; inflection near 0.6-0.7 T)."""
    from ..hiqm import HIQM

    T = total_steps
    knots = [
        {"similarity": 0.2, "L": 0.25, "K": 12.0 / T, "B": 0.6 * T, "D": 0.07},
        {"similarity": 0.5, "L": 0.22, "K": 10.0 / T, "B": 0.65 * T, "D": 0.09},
        {"similarity": 0.8, "L": 0.15, "K": 8.0 / T, "B": 0.7 * T, "D": 0.16},
    ]
    return HIQM(variant="toy", total_steps=T, form="interp", params={"knots": knots},
                similarity_range=(0.2, 0.8),
                provenance={"source": "his_opt.allocation._synthetic.toy_hiqm"})


def toy_slow_profile():  # noqa: ANN201
    """A second toy GPU for mixed servers: slower per step, flatter in batch, less power
    (synthetic, not a measurement)."""
    from ..costs import GPUProfile

    return GPUProfile(name="toy-slow", rows=(1, 2, 4, 8), step_latency_s=(0.11, 0.2, 0.38, 0.75),
                      power_w=120.0, provenance="synthetic: his_opt.allocation._synthetic")


def tiny_instance(
    seed: int,
    *,
    n_users: int = 5,
    n_servers: int = 1,
    total_steps: int = 6,
    common_steps_min: int = 0,
    common_steps_max: int = 2,
    edge_steps_max: int = 3,
    budget_fraction: float = 0.5,
    cycle_model: bool = False,
    deadlines: tuple[float, float] | None = None,
    min_quality: tuple[float, float] | None = None,
    max_groups: int | None = None,
    device_steps_min: int = 0,
    edge_steps_min: int = 0,
    server_budget_fractions: Sequence[float] | None = None,
    batch_caps: Sequence[int] | None = None,
    mixed_profiles: bool = False,
):  # noqa: ANN201
    """A small random instance (clustered similarities, toy HIQM, jittered devices) whose exact
    optimum brute force can enumerate. ``budget_fraction`` scales the budget against what putting
    every user's full edge range on the GPU would need; ``deadlines``/``min_quality`` draw per-user
    limits uniformly from the given ranges (quality limits for about half the users).

    Unequal servers: ``server_budget_fractions`` gives each server its own fraction of that need
    (replacing ``budget_fraction``; its length sets ``n_servers``), ``batch_caps`` each server's
    launch cap (default 3 images), ``mixed_profiles`` puts every second server on a slower toy
    GPU (:func:`toy_slow_profile`)."""
    from ..costs import CycleProfile, EdgeServer, GPUProfile
    from ._instance import build_instance

    rng = np.random.default_rng(seed)
    sc = Scenario(
        total_steps=total_steps, common_steps_min=common_steps_min,
        common_steps_max=common_steps_max, edge_steps_min=edge_steps_min,
        edge_steps_max=edge_steps_max,
        device_steps_min=device_steps_min, device_steps_max=total_steps, device_step_s=1.0,
        max_groups=max_groups, height=64, width=64,
    )
    sim, labels = cluster_similarity(n_users, 2, spread=0.8, random_state=seed)
    users = synthetic_users([f"prompt {i}" for i in range(n_users)], sc,
                            subjects=[f"s{v}" for v in labels], device_jitter=0.3,
                            random_state=seed)
    if deadlines is not None:
        users["deadline_s"] = rng.uniform(*deadlines, n_users)
    if min_quality is not None:
        users["min_quality"] = np.where(rng.random(n_users) < 0.5,
                                        rng.uniform(*min_quality, n_users), np.nan)
    if cycle_model:
        profile = CycleProfile()
    else:
        profile = GPUProfile(name="toy", rows=(1, 2, 4, 8), step_latency_s=(0.05, 0.09, 0.17, 0.33),
                             power_w=300.0)
    a, b = profile.affine_bound(sc.personal_guided)
    need = n_users * edge_steps_max * (a + b)
    if server_budget_fractions is not None:
        n_servers = len(server_budget_fractions)
        budgets = [f * need for f in server_budget_fractions]
    else:
        budgets = [budget_fraction * need / n_servers * (1 + 0.3 * s) for s in range(n_servers)]
    caps = list(batch_caps) if batch_caps is not None else [3] * n_servers
    if len(caps) != n_servers:
        raise ValueError(f"batch_caps needs one cap per server ({n_servers}), got {len(caps)}")
    slow = toy_slow_profile() if mixed_profiles and not cycle_model else profile
    servers = [EdgeServer(f"es{s + 1}", slow if s % 2 else profile, budgets[s],
                          max_batch_images=caps[s]) for s in range(n_servers)]
    return build_instance(users, servers, sc, toy_hiqm(total_steps), similarity=sim,
                          random_state=seed)
