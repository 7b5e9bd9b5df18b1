"""Every defense's and attack's parameters, read from the registries (printed as Markdown).

``python -m jobs.parameters``: one row per parameter with its default, allowed values
and meaning, the same declarations (``dgp.params.Param``) the config validator checks, so
the list cannot drift from the code the way a hand-written one would.
"""

from __future__ import annotations

import argparse

from attacks import ATTACKS
from defenses import DEFENSES
from dgp.params import Param


def allowed(param: Param) -> str:
    """The values ``param`` accepts, in words."""
    if param.kind is bool:
        return "true or false"
    if param.kind is str:
        return ", ".join(param.choices) if param.choices else "a string"
    return param.range_text()


def parameter_rows(kind: str, registry: dict) -> list[str]:
    """Markdown rows ``| plugin | parameter | default | allowed | meaning |``."""
    rows = []
    for name, cls in registry.items():
        for key, param in cls.parameters.items():
            rows.append(f"| {kind} `{name}` | `{key}` | `{param.default!r}` | {allowed(param)} "
                        f"| {param.doc} |")
        if not cls.parameters:
            rows.append(f"| {kind} `{name}` | (none) | | | |")
    return rows


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    print("| plugin | parameter | default | allowed | meaning |")
    print("|---|---|---|---|---|")
    for row in parameter_rows("defense", DEFENSES) + parameter_rows("attack", ATTACKS):
        print(row)


if __name__ == "__main__":
    main()
