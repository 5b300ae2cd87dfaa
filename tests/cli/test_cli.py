"""The `telecart` command as a technician or administrator uses it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.run import run_telecart


def test_admin_lifecycle(tmp_path: Path) -> None:
    added = run_telecart(tmp_path, "admin", "add-cart", "aral-1", "--clinic", "Aral district")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip().splitlines()[-1]
    assert len(token) >= 40
    spec = run_telecart(
        tmp_path, "admin", "add-specialist", "Amir", "--specialty", "cardiology",
        "--specialty", "pulmonology", stdin="long enough password\n",
    )  # fmt: skip
    assert spec.returncode == 0, spec.stderr
    listing = run_telecart(tmp_path, "admin", "list")
    assert "aral-1" in listing.stdout and "amir" in listing.stdout
    assert token not in listing.stdout
    revoked = run_telecart(tmp_path, "admin", "revoke-cart", "aral-1")
    assert revoked.returncode == 0
    assert "revoked" in run_telecart(tmp_path, "admin", "list").stdout
    assert token.encode() not in (tmp_path / "telecart.sqlite3").read_bytes()


def test_admin_refuses_duplicates_short_passwords_and_unknown_specialties(tmp_path: Path) -> None:
    assert run_telecart(tmp_path, "admin", "add-cart", "c", "--clinic", "k").returncode == 0
    dup = run_telecart(tmp_path, "admin", "add-cart", "c", "--clinic", "k")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    short = run_telecart(
        tmp_path, "admin", "add-specialist", "x", "--specialty", "ent", stdin="short\n"
    )
    assert short.returncode == 1 and "at least" in short.stderr
    unknown = run_telecart(
        tmp_path, "admin", "add-specialist", "x", "--specialty", "astrology",
        stdin="long enough password\n",
    )  # fmt: skip
    assert unknown.returncode == 1 and "Unknown specialty" in unknown.stderr


def test_bad_config_exits_2_with_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'eighty'\n")
    result = run_telecart(tmp_path, "--config", str(bad), "admin", "list")
    assert result.returncode == 2 and "server.port" in result.stderr
    missing = run_telecart(tmp_path, "--config", str(tmp_path / "nope.toml"), "admin", "list")
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    env = run_telecart(tmp_path, "admin", "list", env={"TELECART_PORT": "x"})
    assert env.returncode == 2 and "TELECART_PORT" in env.stderr


def test_usage_error_exits_2(tmp_path: Path) -> None:
    assert run_telecart(tmp_path, "admin").returncode == 2
    assert run_telecart(tmp_path, "fly").returncode == 2


def test_server_imports_no_media_libraries() -> None:
    code = (
        "import sys, telecart.cli, telecart.server.app;"
        "bad = [m for m in ('aiortc', 'av', 'cv2', 'sounddevice') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("flag", ["--host", "--port"])
def test_server_help_lists_address_overrides(tmp_path: Path, flag: str) -> None:
    assert flag in run_telecart(tmp_path, "server", "--help").stdout


def test_admin_report_and_export_errors(tmp_path: Path) -> None:
    report = run_telecart(tmp_path, "admin", "report", "--from", "2026-11-01", "--to", "2026-11-30")
    assert report.returncode == 0, report.stderr
    assert report.stdout.splitlines()[0].count(",") >= 3
    missing = run_telecart(tmp_path, "admin", "export-record", "nope", "--pdf", str(tmp_path / "x"))
    assert missing.returncode == 1 and missing.stderr.strip()
