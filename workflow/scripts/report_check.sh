#!/usr/bin/env bash
# Open a rendered report in headless Chromium and check that it renders (report/check_render.py),
# installing the Debian package 'chromium' first when it is missing and we may (root + apt).
# Usage: bash workflow/scripts/report_check.sh REPORT_HTML SCREENSHOT_PNG
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (Debian package) for the report check"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "report check needs Chromium: install the Debian package 'chromium'" >&2
    exit 2
  fi
fi
"$repo/.venv/bin/python" -m report.check_render "$1" --screenshot "$2"
