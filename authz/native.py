"""The decision engine's compiled build: ``evaluate.py``, ``plan.py`` and the Cerbos JSON adapter
``api.py`` compiled to C with mypyc, as one group.

The Python sources are the engine; ``scripts/build-native`` compiles the same sources into
extension modules beside them (a check from a fresh engine costs about a third less). The build is
used only with the sources it was built from: it records one SHA-256 over every source of the
package (a compiled module also relies on the modules it imports) in ``native.json``, and after any
change (an edit, a checkout) every compiled module is loaded from its source instead, with a
warning, so a stale build can never decide anything. Without a build, or with
``CCC_AUTHZ_PURE=1``, everything runs as plain Python.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import warnings
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
STAMP = PACKAGE / "native.json"
MODULES = ("plan", "evaluate", "api")  # compiled together: calls between them stay in C
GROUP = "authz.compiled_engine"  # the shared library of the build, kept inside the package


def sources_hash() -> str:
    """One digest of every Python source in the package, names included."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def compiled_files(name: str) -> list[Path]:
    return sorted(PACKAGE.glob(f"{name}.*.so")) + sorted(PACKAGE.glob(f"{name}.*.pyd"))


def stale_modules() -> list[str]:
    """The compiled modules present that are not to be used: all of them when the sources differ
    from those they were built from (or CCC_AUTHZ_PURE is set)."""
    present = [name for name in MODULES if compiled_files(name)]
    if not present:
        return []
    try:
        built = json.loads(STAMP.read_text()).get("sources")
    except (OSError, ValueError, AttributeError):
        built = None
    return present if os.environ.get("CCC_AUTHZ_PURE") or built != sources_hash() else []


def use_current_sources() -> None:
    """Makes sure no stale compiled module is imported: each one is loaded from its source first.
    Called by ``authz/__init__.py`` before anything imports the engine."""
    for name in stale_modules():
        if not os.environ.get("CCC_AUTHZ_PURE"):
            warnings.warn(
                f"authz/ changed since scripts/build-native compiled authz/{name}.py: using its source "
                "(run scripts/build-native again for the compiled build)",
                stacklevel=2,
            )
        load_source(name, f"authz.{name}")


def load_source(name: str, module_name: str) -> object:
    """The module ``name`` executed from its Python source under ``module_name``."""
    spec = importlib.util.spec_from_file_location(module_name, PACKAGE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def is_compiled(module: object) -> bool:
    return str(getattr(module, "__file__", "")).endswith((".so", ".pyd"))


def build() -> None:
    """Compiles the engine modules in place (needs mypy and a C compiler) and records the sources."""
    # Everything an earlier build left: the modules, the group's library, and the per-module
    # libraries of builds made before the modules were compiled as one group.
    libraries = [GROUP.rsplit(".", 1)[1], *MODULES]
    for old in [
        *(f for name in MODULES for f in compiled_files(name)),
        *(f for library in libraries for f in PACKAGE.glob(f"{library}__mypyc.*")),
    ]:
        old.unlink()
    sources = sources_hash()
    script = (
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        f"setup(name='authz-compiled', script_args=['build_ext', '--inplace'], ext_modules=mypycify("
        f"['--follow-imports=silent', *{[f'authz/{name}.py' for name in MODULES]!r}], group_name={GROUP!r}))\n"
    )
    import subprocess  # only to build: every start imports this module

    done = subprocess.run([sys.executable, "-c", script], cwd=PACKAGE.parent, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"mypyc could not compile the engine:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    STAMP.write_text(json.dumps({"sources": sources, "modules": list(MODULES)}, indent=1) + "\n")
    print(f"compiled {', '.join(f'authz/{name}.py' for name in MODULES)} with mypyc")
