"""``python -m aml_rollouts``: the same as the ``aml-rollouts`` console script."""

from __future__ import annotations

import sys

from aml_rollouts.cli import main

if __name__ == "__main__":
    sys.exit(main())
