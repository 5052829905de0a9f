"""The CCC embedded policy engine: Cerbos-format policies, CEL conditions, Cerbos 0.55 decisions.

    engine = Engine.from_directory("policies")
    out = engine.check(CheckInput(principal, resource, ["view"]))
"""

from .compile import PolicySet, compile_policy_dir
from .conditions import EvaluationError
from .engine import Engine
from .errors import AuthzError, PolicyErrors, PolicyProblem, RequestError
from .evaluate import ActionEffect, CheckInput, CheckOutput, EvalParams, OutputEntry, Principal, Resource

__all__ = [
    "ActionEffect",
    "AuthzError",
    "CheckInput",
    "CheckOutput",
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
