"""Synthetic inputs for tests, benchmarks and examples: varied prompts from subject and attribute
templates (seeded), the canonical users table for them, a clustered cosine matrix that needs no
model, and a small logistic HIQM for any number of steps; tiny instances for exact enumeration;
benchmark workloads (several prompt domains, near-duplicates, outliers, mixed devices, deadlines,
minimum qualities, identical, unequal and mixed servers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..scenario import Scenario
from ._instance import USER_TABLE_COLUMNS

__all__ = [
    "SERVER_MIXES",
    "SUBJECTS",
    "Workload",
    "benchmark_prompts",
    "benchmark_servers",
    "benchmark_users",
    "benchmark_workload",
    "l4_class_profile",
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
    min_share_similarity: float | None = -1.0,
):  # noqa: ANN201
    """A small random instance (clustered similarities, toy HIQM, jittered devices) whose exact
    optimum brute force can enumerate. ``budget_fraction`` scales the budget against what putting
    every user's full edge range on the GPU would need; ``deadlines``/``min_quality`` draw per-user
    limits uniformly from the given ranges (quality limits for about half the users).

    Unequal servers: ``server_budget_fractions`` gives each server its own fraction of that need
    (replacing ``budget_fraction``; its length sets ``n_servers``), ``batch_caps`` each server's
    launch cap (default 3 images), ``mixed_profiles`` puts every second server on a slower toy
    GPU (:func:`toy_slow_profile`). ``min_share_similarity`` defaults to -1 (every pair may
    share); None takes the toy HIQM's fitted range."""
    from ..costs import CycleProfile, EdgeServer, GPUProfile
    from ._instance import build_instance

    rng = np.random.default_rng(seed)
    sc = Scenario(
        total_steps=total_steps, common_steps_min=common_steps_min,
        common_steps_max=common_steps_max, edge_steps_min=edge_steps_min,
        edge_steps_max=edge_steps_max,
        device_steps_min=device_steps_min, device_steps_max=total_steps, device_step_s=1.0,
        max_groups=max_groups, height=64, width=64, min_share_similarity=min_share_similarity,
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


# ---------------------------------------------------------------------------- benchmark workloads
SERVER_MIXES = ("1", "3-identical", "3-unequal", "3-mixed", "4-identical", "16-mixed")
"""Server sets of :func:`benchmark_servers` (budgets are fractions of the GPU time every user's
full edge range would need unshared, ``N * y_max * (alpha + beta)`` on the base profile)."""

_OUTLIERS = ("a technical blueprint of a jet engine", "a page of handwritten arabic calligraphy",
             "an x-ray of a human hand", "a spreadsheet chart of quarterly sales",
             "a microscope image of pollen grains", "a subway map of an imaginary city",
             "an abstract pattern of interlocking hexagons", "a receipt from a grocery store")
_DEVICES = (  # (share, step time factor vs the scenario's device, power in W): phone, laptop, desktop
    (0.3, 2.0, 5.0), (0.5, 1.0, 15.0), (0.2, 0.4, 45.0))


@dataclass(frozen=True, eq=False)
class Workload:
    """A benchmark instance before similarities: users table, servers, scenario and synthetic
    embeddings (domain centres, near-duplicates close to their original, outliers far from
    all) that stand in for MiniLM when no model should be loaded."""

    users: pd.DataFrame
    servers: tuple
    scenario: Scenario
    embeddings: np.ndarray

    @property
    def prompts(self) -> list[str]:
        return [str(p) for p in self.users["prompt"]]

    def similarity(self, embeddings: np.ndarray | None = None) -> np.ndarray:
        """``(publics, users)`` cosines, publics the distinct prompts in order of first use (the
        default candidates of ``build_instance``); ``embeddings`` one row per user (default the
        synthetic ones)."""
        emb = self.embeddings if embeddings is None else np.asarray(embeddings, dtype=np.float64)
        emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        first: dict[str, int] = {}
        for i, p in enumerate(self.prompts):
            first.setdefault(p, i)
        rows = list(first.values())
        return np.clip(emb[rows] @ emb.T, -1.0, 1.0)

    def instance(self, embeddings: np.ndarray | None = None, hiqm=None, random_state: int | None = 0):  # noqa: ANN001, ANN201
        """The :class:`Instance` (default HIQM of the scenario's variant)."""
        from ..hiqm import load_default_hiqm
        from ._instance import build_instance

        hiqm = hiqm if hiqm is not None else load_default_hiqm(self.scenario.variant)
        return build_instance(self.users, self.servers, self.scenario, hiqm,
                              similarity=self.similarity(embeddings), random_state=random_state)


def l4_class_profile(base):  # noqa: ANN001, ANN201
    """A second GPU profile for mixed servers, **synthetic**: ``base`` (an A100-class estimate)
    with every step 2.6x slower (312 / 121 dense fp16 TFLOP/s, A100 vs L4), launches up to 16
    rows (24 GiB) and 72 W board power. Not a measurement."""
    from ..costs import GPUProfile

    rows = tuple(r for r in base.rows if r <= 16)
    lat = tuple(2.6 * t for r, t in zip(base.rows, base.step_latency_s, strict=True) if r <= 16)
    return GPUProfile(name=f"{base.name}-scaled-l4-class", rows=rows, step_latency_s=lat,
                      kind="estimate", device="L4-class (synthetic, scaled from " + base.name + ")",
                      memory_limit_gib=24.0, power_w=72.0,
                      provenance=f"synthetic: {base.name} latencies x 2.6, 72 W, at most 16 rows "
                                 "(his_opt.allocation._synthetic.l4_class_profile)")


def benchmark_prompts(n: int, random_state: int | None = None) -> tuple[list[tuple[str, str]], np.ndarray]:
    """``n`` (prompt, subject) pairs over several domains of uneven size, with near-duplicates
    (15%: an earlier prompt, 1 in 3 verbatim, else with a detail added) and outliers (5%), plus a
    synthetic 16-d embedding per prompt that mirrors that structure."""
    rng = np.random.default_rng(random_state)
    names = list(SUBJECTS)
    weights = 1.0 / np.arange(1, len(names) + 1)
    weights /= weights.sum()
    centres = rng.normal(size=(len(names), 16))
    out: list[tuple[str, str]] = []
    emb = np.zeros((n, 16))
    for i in range(n):
        r = rng.random()
        if i > 0 and r < 0.15:
            j = int(rng.integers(i))
            text, subject = out[j]
            if rng.random() >= 1 / 3:
                text = f"{text}, {_DETAILS[int(rng.integers(len(_DETAILS)))]}"
            emb[i] = emb[j] + (0.0 if text == out[j][0] else 0.15) * rng.normal(size=16)
        elif r < 0.2:
            text = (f"{_OUTLIERS[int(rng.integers(len(_OUTLIERS)))]}, "
                    f"{_STYLES[int(rng.integers(len(_STYLES)))]}")
            subject = "outlier"
            emb[i] = 2.0 * rng.normal(size=16)
        else:
            k = int(rng.choice(len(names), p=weights))
            text, subject = generate_prompts(1, int(rng.integers(2**31)), subjects=[names[k]])[0]
            emb[i] = centres[k] + 0.6 * rng.normal(size=16)
        out.append((text, subject))
    return out, emb


def benchmark_users(pairs: Sequence[tuple[str, str]], scenario: Scenario,
                    random_state: int | None = None) -> pd.DataFrame:
    """Users for ``pairs``: mixed devices (phone, laptop, desktop classes), channel gains spread
    over a decade, deadlines for a quarter of the users (75-100% of their all-on-device delay)
    and minimum qualities for a fifth (0.29-0.315, the default HIQM's unshared value is 0.322)."""
    rng = np.random.default_rng(random_state)
    n = len(pairs)
    share = np.array([d[0] for d in _DEVICES])
    cls = rng.choice(len(_DEVICES), size=n, p=share / share.sum())
    step = scenario.device_step_s * np.array([d[1] for d in _DEVICES])[cls]
    users = synthetic_users([p for p, _ in pairs], scenario, subjects=[s for _, s in pairs])
    users["device_step_s"] = step
    users["device_step_energy_j"] = step * np.array([d[2] for d in _DEVICES])[cls]
    users["channel_gain"] = scenario.channel_gain * 10 ** rng.uniform(-0.5, 0.5, n)
    local = scenario.total_steps * step
    users["deadline_s"] = np.where(rng.random(n) < 0.25, local * rng.uniform(0.75, 1.0, n), np.nan)
    users["min_quality"] = np.where(rng.random(n) < 0.2, rng.uniform(0.29, 0.315, n), np.nan)
    return users


def benchmark_servers(mix: str, n_users: int, scenario: Scenario, profile,  # noqa: ANN001
                      random_state: int | None = None) -> tuple:
    """The servers of ``mix`` (one of :data:`SERVER_MIXES`) for ``n_users`` users: ``1`` and
    ``K-identical``: together 40% of the need; ``3-unequal``: 50/30/10% with launch caps 16/8/4;
    ``3-mixed``: 30/20/15%, caps 16/8/8, the third an :func:`l4_class_profile`; ``16-mixed``:
    budgets 1-5% each (seeded), caps 16/8/4/12 in turn, every second server L4-class."""
    from ..costs import EdgeServer

    a, b = profile.affine_bound(scenario.personal_guided)
    need = n_users * scenario.edge_steps_max * (a + b)
    l4 = l4_class_profile(profile)
    if mix == "1" or mix.endswith("-identical"):
        k = 1 if mix == "1" else int(mix.split("-")[0])
        return tuple(EdgeServer(f"es{s + 1}", profile, 0.4 * need / k) for s in range(k))
    if mix == "3-unequal":
        return tuple(EdgeServer(f"es{s + 1}", profile, f * need, max_batch_images=c)
                     for s, (f, c) in enumerate(((0.5, 16), (0.3, 8), (0.1, 4))))
    if mix == "3-mixed":
        return tuple(EdgeServer(f"es{s + 1}", p, f * need, max_batch_images=c)
                     for s, (p, f, c) in enumerate(((profile, 0.3, 16), (profile, 0.2, 8),
                                                    (l4, 0.15, 8))))
    if mix == "16-mixed":
        rng = np.random.default_rng(random_state)
        fr = rng.uniform(0.01, 0.05, 16)
        caps = (16, 8, 4, 12)
        return tuple(EdgeServer(f"es{s + 1}", l4 if s % 2 else profile, float(fr[s]) * need,
                                max_batch_images=caps[s % 4]) for s in range(16))
    raise ValueError(f"mix must be one of {SERVER_MIXES}, got {mix!r}")


def benchmark_workload(n_users: int, mix: str, *, random_state: int | None = 0,
                       scenario: Scenario | None = None) -> Workload:
    """A seeded benchmark instance: :func:`benchmark_prompts`, :func:`benchmark_users` and
    :func:`benchmark_servers` on the scenario's default GPU profile."""
    from ..costs import load_profile

    sc = scenario or Scenario()
    pairs, emb = benchmark_prompts(n_users, random_state)
    users = benchmark_users(pairs, sc, random_state)
    servers = benchmark_servers(mix, n_users, sc, load_profile(sc.server_profile), random_state)
    return Workload(users=users, servers=servers, scenario=sc, embeddings=emb)
