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


def resource_policy(resource: str, rules: str, derived_roles: str = "") -> str:
    """A resource policy (version default) with ``rules``: YAML list items indented by four spaces,
    importing the derived roles named ``derived_roles`` if any."""
    imports = f"  importDerivedRoles: [{derived_roles}]\n" if derived_roles else ""
    return (
        f"apiVersion: api.cerbos.dev/v1\nresourcePolicy:\n  resource: {resource}\n  version: default\n"
        f"{imports}  rules:\n{rules}"
    )


def write_policies(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).write_text(text)
