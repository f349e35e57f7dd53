"""``python solve.py USERS.csv ...``: the same as ``his-opt solve`` (see ``--help``)."""

from his_opt.cli._solve import main

raise SystemExit(main())
