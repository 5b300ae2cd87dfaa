"""`python -m telecart ARGS` to completion, its data in a test's own directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_telecart(
    tmp_path: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "TELECART_DATA_DIR": str(tmp_path), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "telecart", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )
