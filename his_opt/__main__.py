"""``python -m his_opt``: the ``his-opt`` console script."""

from .cli import main

raise SystemExit(main())
