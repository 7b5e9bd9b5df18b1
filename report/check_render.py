"""Open the report in headless Chromium, as a reader would, and check that it renders.

Checks that the page's load script ran, that every image (figures and galleries) decoded,
that the browser saw as many images as the HTML holds, and that no template syntax or
Python error text reached the page; then saves a screenshot.

Usage: ``python -m report.check_render results/report.html --screenshot results/report.png``
(exit status 1 with the reason when a check fails, 2 when no Chromium is installed).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Text that must never reach a rendered report.
LEAKS = ("{{", "{%", "Traceback (most recent call last)", "Undefined", "jinja2.exceptions")


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def _browser(browser: str, *arguments: str, profile: str) -> subprocess.CompletedProcess:
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--virtual-time-budget=20000", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


def check_dom(html: str, dom: str) -> list[str]:
    """Problems found in the browser's DOM of the report (empty when it rendered)."""
    problems = []
    body = re.search(r"<body([^>]*)>", dom)
    attributes = dict(re.findall(r'(data-[\w-]+)="([^"]*)"', body.group(1))) if body else {}
    if "data-images" not in attributes:
        return ["the page's load script did not run (no data-images on <body>)"]
    expected = len(re.findall(r"<img\b", html))
    seen, broken = int(attributes["data-images"]), int(attributes["data-broken-images"])
    if seen != expected:
        problems.append(f"the browser saw {seen} images, the HTML has {expected}")
    if broken:
        problems.append(f"{broken} of {seen} images did not render")
    text = re.sub(r"<script.*?</script>", "", dom, flags=re.DOTALL)
    problems += [f"the page shows {leak!r}" for leak in LEAKS if leak in text]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("--screenshot", type=Path, required=True)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=6000)
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print(f"no Chromium found (tried {', '.join(BROWSERS)}); install the Debian package "
              "'chromium'", file=sys.stderr)
        return 2
    url = args.report.resolve().as_uri()
    with tempfile.TemporaryDirectory() as profile:
        dom = _browser(browser, "--dump-dom", url, profile=profile).stdout
        problems = check_dom(args.report.read_text(), dom)
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        _browser(browser, f"--screenshot={args.screenshot.resolve()}",
                 f"--window-size={args.width},{args.height}", url, profile=profile)
    if not args.screenshot.is_file():
        problems.append(f"no screenshot was written to {args.screenshot}")
    for problem in problems:
        print(f"report check failed: {problem}", file=sys.stderr)
    if not problems:
        print(f"report renders: {args.report} (screenshot {args.screenshot})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
