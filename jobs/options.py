"""The command-line options every job entry point shares: the defended setting it runs."""

from __future__ import annotations

import argparse
import json


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    """--dataset (a config entry as JSON), --defense, --ratio, --defense-params, --device
    and --threads, as the workflow passes them (workflow/rules/common.smk)."""
    parser.add_argument("--dataset", required=True, type=json.loads,
                        help='dataset config entry as JSON, e.g. \'{"name": "digits", '
                             '"model": "lenet", "image_size": 16}\'')
    parser.add_argument("--defense", required=True)
    parser.add_argument("--ratio", required=True, type=float)
    parser.add_argument("--defense-params", type=json.loads, default={})
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
