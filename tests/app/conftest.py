"""Qt tests run offscreen; each test gets its own data directory (a real SQLite file)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
