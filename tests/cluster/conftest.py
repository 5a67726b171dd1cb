"""The cluster smoke test shares its helpers (kubetest.py) with tests/e2e."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
