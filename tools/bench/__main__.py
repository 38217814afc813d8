"""``python -m tools.bench``: run the benchmark suite (see ``--help``)."""

from __future__ import annotations

from tools.bench._driver import main

raise SystemExit(main())
