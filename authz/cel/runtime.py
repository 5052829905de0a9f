"""What compiled CEL runs against: the ``Activation`` (request messages, frozen clock, globals,
comprehension variables, the per-request cache of policy variables), and the field selection,
indexing and call helpers the compiled closures use."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .cerbos_ext import Hierarchy
from .values import (
    OPTIONAL_NONE,
    CelError,
    Message,
    Optional,
    Uint,
    field_name,
    is_default_field,
    map_lookup,
    no_overload,
    type_name,
)

Fn = Callable[["Activation"], Any]


class Activation:
    """Everything one evaluation can see: the request messages, the frozen clock, globals,
    the comprehension variables in scope, and the per-request cache of policy variables."""

    __slots__ = ("request", "P", "R", "runtime", "runtime_source", "globals", "now", "locals", "var_cache")

    def __init__(
        self,
        request: Message,
        now: datetime,
        globals_: dict[str, Any] | None = None,
        runtime: Message | None = None,
    ) -> None:
        self.request = request
        self.P = request.fields["principal"]
        self.R = request.fields["resource"]
        self.now = now
        self.globals = globals_ or {}
        self.runtime = runtime or EMPTY_RUNTIME
        # When set, ``runtime`` is asked for only when an expression reads it (working out the
        # effective derived roles costs conditions of their own).
        self.runtime_source: Callable[[], Message] | None = None
        self.locals: dict[str, Any] = {}
        self.var_cache: dict[int, Any] = {}

    def current_runtime(self) -> Message:
        source = self.runtime_source
        return self.runtime if source is None else source()

    def var(self, variable: Variable) -> Any:
        """A policy variable, evaluated at most once per request.

        A variable whose expression fails is left undefined, as Cerbos leaves it, so reading it
        is the error "undefined field" (the variable's own error is the cause)."""
        key = id(variable)
        cache = self.var_cache
        if key in cache:
            value = cache[key]
            if type(value) is _Undefined:
                raise value.error()
            return value
        try:
            value = variable.fn(self)
        except CelError as exc:
            undefined = cache[key] = _Undefined(variable.name, CelError(str(exc)))
            raise undefined.error() from None
        cache[key] = value
        return value


class _Undefined:
    """A variable whose expression failed. Its error is kept as a plain message and raised afresh
    on each read: a raised exception kept in the cache would hold (through its traceback) the
    frames that hold this activation, a reference cycle only the garbage collector could free."""

    __slots__ = ("name", "cause")

    def __init__(self, name: str, cause: CelError) -> None:
        self.name = name
        self.cause = cause

    def error(self) -> CelError:
        error = CelError(f"undefined field '{self.name}'")
        error.__cause__ = self.cause
        return error


EMPTY_RUNTIME = Message("cerbos.Runtime", {"effectiveDerivedRoles": []})  # no derived roles in play


@dataclass(eq=False)
class Variable:
    """A compiled policy variable (``V.name``)."""

    name: str
    fn: Fn
    static_type: str = "dyn"


@dataclass
class Scope:
    """What an expression may name: the policy's variables and constants.

    ``attr_escapes`` collects, from every expression compiled in this scope, the roots ("P", "R")
    whose ``attr`` map some expression reads other than one named attribute at a time (see
    ``Compiler.attr_escapes``). Scopes of one policy set may share one set."""

    variables: dict[str, Variable] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    runtime_variables: set[str] = field(default_factory=set)  # those that may read ``runtime``
    attr_escapes: set[str] = field(default_factory=set)


_UNSET = object()


def _restore(locals_: dict[str, Any], var: str, saved: Any) -> None:
    if saved is _UNSET:
        locals_.pop(var, None)
    else:
        locals_[var] = saved


def _caller(fn: Callable[..., Any], fns: list[Fn]) -> Fn:
    """A closure calling ``fn`` on the values of ``fns``, specialised for small arities."""

    def guard(*args: Any) -> Any:
        try:
            return fn(*args)
        except CelError:
            raise
        except TypeError:
            raise no_overload(getattr(fn, "__name__", "function"), *args) from None
        except (ValueError, OverflowError, ZeroDivisionError, IndexError, KeyError) as exc:
            raise CelError(str(exc)) from None

    if len(fns) == 0:
        return lambda a: guard()
    if len(fns) == 1:
        (f0,) = fns
        return lambda a: guard(f0(a))
    if len(fns) == 2:
        f0, f1 = fns
        return lambda a: guard(f0(a), f1(a))
    return lambda a: guard(*[f(a) for f in fns])


def _select(value: Any, name: str) -> Any:
    t = type(value)
    if t is dict:
        try:
            return value[name]
        except KeyError:
            raise CelError(f"no such key: {name}") from None
    if t is Optional:  # after ``.?``, the rest of the chain selects optionally too
        return _select_optional(value, name)
    if t is Message:
        try:
            return value.fields[field_name(name)]
        except KeyError:
            raise CelError(f"no such field '{name}'") from None
    raise CelError(f"no such key: {name}")


def _select_optional(value: Any, name: str) -> Optional:
    if type(value) is Optional:
        if not value.present:
            return OPTIONAL_NONE
        value = value.value
    if type(value) is dict:
        return Optional(value[name], True) if name in value else OPTIONAL_NONE
    if type(value) is Message:
        return Optional(value.fields[field_name(name)], True) if _has_field(value, name) else OPTIONAL_NONE
    raise CelError(f"type '{type_name(value)}' does not support field selection")


def _has_field(value: Any, name: str) -> bool:
    t = type(value)
    if t is dict:
        return name in value
    if t is Message:
        key = field_name(name)
        if key not in value.fields:
            raise CelError(f"no such field '{name}'")
        v = value.fields[key]  # (an undecidable runtime's read is its error)
        if key == "effectiveDerivedRoles":
            return True  # Cerbos's runtime has the list, even an empty one
        return not is_default_field(v)
    raise CelError(f"invalid type for field selection: {type_name(value)}")


def _index(container: Any, key: Any) -> Any:
    t = type(container)
    if t is list or t is tuple or t is Hierarchy:
        kt = type(key)
        if kt is float and key.is_integer():
            key = int(key)
        elif kt not in (int, Uint):
            raise CelError(f"unsupported index type '{type_name(key)}' in list")
        if key < 0 or key >= len(container):
            raise CelError(f"index out of bounds: {key}")
        return container[key]
    if t is dict:
        return map_lookup(container, key)
    raise no_overload("_[_]", container, key)


def _index_optional(container: Any, key: Any) -> Optional:
    if type(container) is Optional:
        if not container.present:
            return OPTIONAL_NONE
        container = container.value
    try:
        return Optional(_index(container, key), True)
    except CelError:
        if type(container) in (list, tuple, dict):
            return OPTIONAL_NONE
        raise
