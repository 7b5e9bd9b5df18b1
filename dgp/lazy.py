"""torch, imported on its first use (the standard library's ``importlib.util.LazyLoader``).

Config validation loads every plugin module to read its declared names, parameters and
checks, none of which needs a tensor. The modules it loads (the registries' plugins and
the core they build on) reach torch through this name and import nothing from torch at
module level, so validating a config never imports torch (1.5-2.5 s here). The first
attribute access, e.g. a job's first tensor operation, imports torch for real into this
same module object, which ``import torch`` elsewhere then returns. (A module-level
``import torch`` or ``from torch import nn`` in such a module would import it at once.)
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def deferred(name: str) -> ModuleType:
    """The top-level module ``name``, executed on its first attribute access (at once if
    it is already imported)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


torch = deferred("torch")
