"""``python -m his_opt.costs``: regenerate the shipped estimated default GPU profile."""

from . import estimate_profile, models_dir


def main() -> None:
    profile = estimate_profile()
    path = models_dir() / "gpu" / f"{profile.name}.json"
    profile.save(path)
    print(f"wrote {path}: {', '.join(f'{r} rows {t * 1e3:.1f} ms' for r, t in zip(profile.rows, profile.step_latency_s, strict=True))}")


if __name__ == "__main__":
    main()
