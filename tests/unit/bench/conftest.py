"""The bench scripts are not a package (``bench/chaos.py`` runs as ``python bench/chaos.py`` and
imports ``harness`` and ``chaos_world`` as top-level modules): their tests import them the same
way, from the bench folder on the path."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))
