"""End a job's process without the interpreter's teardown.

Unloading torch (its thousands of modules and its C++ registrations) costs a process 0.3-0.9 s
on this machine: a bare ``import torch`` takes 1.6-1.9 s as a process, 1.2-1.3 s when it ends
with ``os._exit`` (`benchmarks/startup.py`), up to a twentieth of a default-grid job. Nothing is
lost by skipping it: a job writes each output atomically and closes it before ``main`` returns,
and the standard streams are flushed here. An exception ends the process the usual way
(traceback, status 1), so a failing job reads as before; an input the job cannot read
(``dgp.io.UnreadableInput``) ends it with its message alone, status 1.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from dgp.io import UnreadableInput


def run_and_exit(main: Callable[[], None]) -> NoReturn:
    """Run ``main``; on success flush stdout and stderr and end the process with status 0."""
    try:
        main()
    except UnreadableInput as error:
        sys.exit(f"error: {error}")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
