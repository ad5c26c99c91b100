"""Headless Chromium for the tests that open the grader's pages (the formgrader, feedback, sheets)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def browser_or_skip():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("no chromium/chromedriver here: `make browser-tools` installs them (apt-get, as root); "
                    "CI always does")
    return pytest.importorskip("selenium", reason="selenium is in requirements.txt: `make install`")


def chrome(profile: Path):
    """A headless Chromium driven by chromedriver, with a new profile in ``profile`` (no cookie or
    cache of another run); ``browser_or_skip`` first, and the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    # the page loads MathJax from a CDN: fail that at once instead of waiting on DNS
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
