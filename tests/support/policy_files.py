"""Small policy sets written by tests into a temporary directory."""

from __future__ import annotations

from pathlib import Path

# Derived roles for a "doc" resource: the owner, one that errs without R.attr.level, and one that
# reads runtime.effectiveDerivedRoles.
DERIVED_ROLES = """apiVersion: api.cerbos.dev/v1
derivedRoles:
  name: roles
  definitions:
    - name: owner
      parentRoles: [user]
      condition:
        match:
          expr: R.attr.owner == P.id
    - name: shaky
      parentRoles: [user]
      condition:
        match:
          expr: R.attr.level > 3
    - name: curious
      parentRoles: [user]
      condition:
        match:
          expr: '"owner" in runtime.effectiveDerivedRoles'
"""


def write_policies(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(text)
