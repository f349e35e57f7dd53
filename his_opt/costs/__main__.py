"""``python -m his_opt.costs [OUT.json]``: regenerate the estimated default GPU profile.

Writes ``OUT.json`` (default: ``NAME.json`` in the working directory, never into the installed
package); to refresh the shipped copy pass ``his_opt/data/models/gpu/NAME.json`` from a checkout.
"""

import sys
from pathlib import Path

from . import estimate_profile


def main() -> None:
    profile = estimate_profile()
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd() / f"{profile.name}.json"
    profile.save(path)
    print(f"wrote {path}: {', '.join(f'{r} rows {t * 1e3:.1f} ms' for r, t in zip(profile.rows, profile.step_latency_s, strict=True))}")


if __name__ == "__main__":
    main()
