"""The main demo run by ``make demo``."""

from __future__ import annotations

from .scheduler_demo import main

if __name__ == "__main__":
    main()
