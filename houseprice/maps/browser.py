"""Headless Chromium for checking rendered maps: offline-ness, console errors, load timing.

This module owns how a map is opened in a real browser by the browser test and the map
benchmark: Debian's ``chromium`` driven by Playwright (the Python package only; Playwright's
own browser download is never used). Every request that is not ``file:``/``data:``/``blob:``/
``about:`` is recorded and aborted, so a check can fail on it without ever touching the
network. Playwright is imported lazily: it is a development dependency.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route

__all__ = ["CHROMIUM_ARGS", "PageLog", "find_chromium", "headless_chromium", "open_page"]

# Flags that keep Chromium quiet and local: no background traffic, no QUIC, no first-run UI.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
)
_LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
_CHROMIUM_ENV = "HOUSEPRICE_CHROMIUM"


def find_chromium() -> str | None:
    """Path of the Chromium executable: $HOUSEPRICE_CHROMIUM, else chromium on PATH, else None."""
    configured = os.environ.get(_CHROMIUM_ENV)
    if configured:
        return configured if Path(configured).is_file() else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageLog:
    """What a page did: every request URL, blocked (non-local) requests and errors."""

    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)  # loads the page itself aborted
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Non-local requests, failed local requests, console errors and uncaught exceptions."""
        return (
            [f"network request: {u}" for u in self.blocked]
            + [f"failed request: {u}" for u in self.failed if u not in self.blocked]
            + [f"console error: {m}" for m in self.console_errors]
            + [f"page error: {m}" for m in self.page_errors]
        )


@contextmanager
def headless_chromium(chromium: str | None = None) -> Iterator[Browser]:
    """A headless Chromium (fresh temporary profile) driven by Playwright."""
    executable = chromium or find_chromium()
    if executable is None:
        raise FileNotFoundError(
            "chromium not found: install it (`bash .ci/install_browser.sh` or "
            f"`apt-get install chromium`) or set ${_CHROMIUM_ENV}"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        raise ImportError(
            "the browser checks need the Python package 'playwright' "
            "(`pip install playwright`; never run `playwright install`)"
        ) from err
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(
    browser: Browser,
    html_path: str | Path,
    *,
    viewport: tuple[int, int] = (1200, 800),
    init_script: str | None = None,
    timeout_ms: float = 60_000,
) -> tuple[Page, PageLog]:
    """Open a local HTML file in a new context, recording requests, failures and errors.

    Non-local requests are aborted (and recorded in ``log.blocked``). Returns after the
    ``load`` event; the caller closes ``page.context``.
    """
    log = PageLog()
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    if init_script:
        context.add_init_script(init_script)

    def route(route: Route) -> None:
        url = route.request.url
        if url.startswith(_LOCAL_SCHEMES):
            route.continue_()
        else:
            log.blocked.append(url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            log.console_errors.append(message.text)

    def on_request_failed(request: Request) -> None:
        # a load the page cancelled (Leaflet drops the tiles of a zoom level it leaves) is
        # not a failure; a missing file (net::ERR_FILE_NOT_FOUND) or a blocked request is
        cancelled = request.failure == "net::ERR_ABORTED" and request.url not in log.blocked
        (log.cancelled if cancelled else log.failed).append(request.url)

    context.route("**/*", route)
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.on("request", lambda request: log.requests.append(request.url))
    page.on("requestfailed", on_request_failed)
    page.on("console", on_console)
    page.on("pageerror", lambda error: log.page_errors.append(str(error)))
    page.goto(Path(html_path).resolve().as_uri(), wait_until="load")
    return page, log
