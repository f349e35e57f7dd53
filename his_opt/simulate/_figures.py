"""The run's figures (matplotlib, Agg): ippo's training reward against the exact per-round
optimum, normalised QoS / delay / energy per policy (the form of the paper's Fig. 5b), GPU
seconds saved by sharing over time, and the round-length sweep."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .._atomic import atomic_path

__all__ = ["plot_sweep", "write_figures"]

_LABEL = {"his": "his (exact)", "ippo": "ippo (HID)", "iis": "IIS", "gfis": "GFIS",
          "ppgfis": "PPGFIS", "greedy": "greedy"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _plt().close(fig)


def write_figures(out: Path, rounds: pd.DataFrame, summary: pd.DataFrame) -> list[Path]:
    """Write the run's PNGs into ``out``; return their paths."""
    paths = []
    training = out / "ippo" / "training.csv"
    if training.exists():
        paths.append(_training(out / "training_reward.png", pd.read_csv(training), summary))
    paths.append(_policies(out / "policies.png", summary))
    paths.append(_gpu_saved(out / "gpu_saved.png", rounds))
    return paths


def _training(path: Path, tr: pd.DataFrame, summary: pd.DataFrame) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(tr["episode"], tr["objective"], lw=1, color="tab:blue", label="ippo (training)")
    if len(tr) >= 10:
        ax.plot(tr["episode"], tr["objective"].rolling(10, min_periods=1).mean(), lw=2,
                color="tab:blue", alpha=0.5, label="ippo, 10-episode mean")
    means = dict(zip(summary["policy"], summary["mean_objective"], strict=True))
    styles = {"his": ("black", "-"), "ppgfis": ("tab:green", "--"), "gfis": ("tab:orange", "--"),
              "iis": ("tab:red", ":")}
    for name, (color, ls) in styles.items():
        if name in means and pd.notna(means[name]):
            label = "exact per-round optimum (his)" if name == "his" else _LABEL[name]
            ax.axhline(means[name], color=color, ls=ls, lw=1.5, label=label)
    ax.set_xlabel("training episode")
    ax.set_ylabel("mean objective per round (w1 U - w2 T - w3 E)")
    ax.set_title("ippo training reward (evaluation-round means as reference lines)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    _save(fig, path)
    return path


def _policies(path: Path, summary: pd.DataFrame) -> Path:
    import numpy as np

    plt = _plt()
    s = summary[summary["mean_reward"].notna()]
    fig, ax = plt.subplots(figsize=(7, 4))
    metrics = [("qos_norm", "QoS"), ("delay_norm", "delay"), ("energy_norm", "energy")]
    width = 0.8 / max(len(s), 1)
    for k, (_, row) in enumerate(s.iterrows()):
        vals = [row[m] for m, _ in metrics]
        bars = ax.bar(np.arange(3) + k * width, vals, width, label=_LABEL.get(row["policy"],
                                                                              row["policy"]))
        for b, v in zip(bars, vals, strict=True):
            ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.2f}", ha="center",
                    fontsize=6, rotation=90)
    ax.set_xticks(np.arange(3) + width * (len(s) - 1) / 2, [m for _, m in metrics])
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("mean per round / largest policy's")
    ax.set_title("normalised QoS, delay and energy per policy")
    ax.legend(fontsize=8, ncol=6, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    _save(fig, path)
    return path


def _gpu_saved(path: Path, rounds: pd.DataFrame) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    rounds = rounds.copy()
    per_ep = rounds.groupby("policy")["round"].max() + 1
    for name, d in rounds.groupby("policy", sort=False):
        t = d["episode"] * int(per_ep[name]) + d["round"]
        ax.plot(t, d["gpu_saved_s"], marker=".", lw=1, label=_LABEL.get(name, name))
    ax.set_xlabel("round (episodes one after another)")
    ax.set_ylabel("GPU seconds saved by sharing")
    ax.set_title("GPU time saved against the same steps run unshared")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)
    return path


def plot_sweep(path: Path, table: pd.DataFrame, key: str, best: float | None) -> Path:
    """Objective, delay (with the wait) and GPU saved per user against the swept value."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    cols = [("reward_per_user", "objective per user (incl. wait)"),
            ("delay_per_user_s", "delay per user incl. wait (s)"),
            ("gpu_saved_per_user_s", "GPU s saved per user")]
    for ax, (col, label) in zip(axes, cols, strict=True):
        for name, d in table.groupby("policy", sort=False):
            ax.plot(d["value"], d[col], marker="o", label=_LABEL.get(name, name))
        if best is not None:
            ax.axvline(best, color="grey", ls="--", lw=1)
        ax.set_xlabel(key)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if best is not None:
        fig.suptitle(f"best {key} = {best:g} (dashed)", fontsize=10)
    _save(fig, path)
    return path
