"""Finding policy files in a directory the way Cerbos's disk store does.

Every ``.yaml``/``.yml``/``.json`` file below the directory is a policy file, except hidden
ones, test suites (``*_test.yaml``), fixtures under ``testdata/`` and JSON schemas under the
top-level ``_schemas/``. Like Cerbos's disk store, a policy file holds exactly one document.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PolicyProblem
from .policy import Policy, parse_policy
from .yamlsrc import Position, YamlError, load_documents

POLICY_SUFFIXES = (".yaml", ".yml", ".json")
SCHEMAS_DIR = "_schemas"
TESTDATA_DIR = "testdata"


def is_test_file(path: Path) -> bool:
    return path.suffix in POLICY_SUFFIXES and path.stem.endswith("_test")


def _visible(rel: Path) -> bool:
    return not any(part.startswith(".") for part in rel.parts)


def policy_files(root: Path) -> list[Path]:
    """Policy files below ``root``, sorted, as paths relative to it."""
    out = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or path.suffix not in POLICY_SUFFIXES or not _visible(rel):
            continue
        if rel.parts[0] == SCHEMAS_DIR or TESTDATA_DIR in rel.parts[:-1] or is_test_file(path):
            continue
        out.append(rel)
    return out


def test_files(root: Path) -> list[Path]:
    """Test suite files below ``root``, sorted, relative to it."""
    return [
        path.relative_to(root)
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and is_test_file(path)
        and _visible(path.relative_to(root))
        and path.relative_to(root).parts[0] != SCHEMAS_DIR
    ]


@dataclass
class LoadedPolicy:
    policy: Policy
    file: str


def read_yaml_documents(root: Path, rel: Path, problems: list[PolicyProblem]) -> list[tuple[Any, Position]]:
    try:
        text = (root / rel).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(PolicyProblem(Position(str(rel), 1, 1), f"cannot read file: {exc}", "unreadable file"))
        return []
    try:
        return list(load_documents(text, str(rel)))
    except YamlError as exc:
        problems.append(PolicyProblem(exc.position, exc.message, "invalid YAML"))
        return []


def load_policies(root: Path, problems: list[PolicyProblem]) -> list[LoadedPolicy]:
    """Every valid, enabled policy below ``root``; problems with the others are appended."""
    loaded: list[LoadedPolicy] = []
    for rel in policy_files(root):
        docs = read_yaml_documents(root, rel, problems)
        if len(docs) > 1:
            # Cerbos's disk store holds one policy per file and rejects the rest.
            problems.append(
                PolicyProblem(
                    docs[1][1], "more than one YAML document detected: put each policy in its own file", "load failure"
                )
            )
            continue
        for doc, where in docs:
            policy = parse_policy(doc, where, problems)
            if policy is not None:
                loaded.append(LoadedPolicy(policy, str(rel)))
    return loaded
