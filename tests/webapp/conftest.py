"""The specialist app in headless Chromium against a real server and a simulated cart agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.e2e.conftest import ARTIFACTS, browser  # noqa: F401 - the Chromium fixture
from tests.server.harness import PASSWORD

ROOT = Path(__file__).resolve().parents[2]
# axe-core 4.14.1 (MPL-2.0), vendored once for the browser tests of both screens.
AXE_PATHS = (
    ROOT / "server" / "web" / "vendor" / "axe.min.js",
    ROOT / "tests" / "nurse" / "vendor" / "axe.min.js",
)


async def login(page: Any, base: str, username: str) -> None:
    await page.goto(base + "/")
    await page.fill("#login-username", username)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_function(
        "window.telecart.state === 'online' || window.telecart.state === 'live'"
    )


async def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"specialist-{name}.png"), full_page=True)


async def serious_axe_violations(page: Any) -> list[dict[str, Any]]:
    """Run the vendored axe-core on the page; violations of impact serious or critical."""
    axe = next(p for p in AXE_PATHS if p.exists())
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(axe))
    results = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' '))}))"
    )
    return [v for v in results if v["impact"] in ("serious", "critical")]


async def unlabeled_controls(page: Any) -> list[str]:
    """Visible buttons, inputs, selects and textareas without an accessible name."""
    return await page.evaluate(
        """() => [...document.querySelectorAll('button, input, select, textarea, a[href]')]
          .filter(e => e.offsetParent !== null)
          .filter(e => !(e.getAttribute('aria-label') || e.labels?.[0]?.textContent
                         || e.textContent || e.getAttribute('placeholder') || '').trim())
          .map(e => e.outerHTML.slice(0, 80))"""
    )
