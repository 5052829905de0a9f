"""The CCC embedded policy engine: Cerbos-format policies, CEL conditions, Cerbos 0.55 decisions.

engine = Engine.from_directory("policies")
out = engine.check(CheckInput(principal, resource, ["view"]))
"""

from . import native

native.use_current_sources()  # a compiled engine module built from older sources is never used

from .compile import PolicySet, compile_policy_dir  # noqa: E402
from .conditions import EvaluationError  # noqa: E402
from .decision import Decision, Effect  # noqa: E402
from .engine import Engine  # noqa: E402
from .errors import AuthzError, PolicyErrors, PolicyProblem, RequestError  # noqa: E402
from .evaluate import ActionEffect, CheckInput, CheckOutput, EvalParams, OutputEntry, Principal, Resource  # noqa: E402

__all__ = [
    "ActionEffect",
    "AuthzError",
    "CheckInput",
    "CheckOutput",
    "Decision",
    "Effect",
    "Engine",
    "EvalParams",
    "EvaluationError",
    "OutputEntry",
    "PolicyErrors",
    "PolicyProblem",
    "PolicySet",
    "Principal",
    "RequestError",
    "Resource",
    "compile_policy_dir",
]
