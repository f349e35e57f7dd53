"""``python -m his_opt.cli``: the ``his-opt`` console script without installing it."""

from . import main

raise SystemExit(main())
