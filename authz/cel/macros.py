"""CEL's comprehension macros (all, exists, exists_one, map, filter) and the two-variable ones
cel-go adds (transformList, transformMap, transformMapEntry, sortBy), with cel-go's error
semantics: ``all``/``exists`` absorb an error when another element decides the result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import library
from .runtime import _UNSET, Activation, Fn, _restore
from .values import CelError, map_contains, no_overload


def _items(name: str, target: Any, two: bool) -> list[tuple[Any, Any]]:
    t = type(target)
    if t is list or t is tuple:
        return list(enumerate(target)) if two else [(v, None) for v in target]
    if t is dict:
        return list(target.items()) if two else [(k, None) for k in target]
    raise no_overload(name, target)


def _bind_loop(a: Activation, variables: list[str], item: tuple[Any, Any]) -> None:
    a.locals[variables[0]] = item[0]
    if len(variables) == 2:
        a.locals[variables[1]] = item[1]


def _looping(impl: Callable[..., Any]) -> Callable[..., Any]:
    """Saves and restores the loop variables around a macro's iteration."""

    def run(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> Any:
        saved = [a.locals.get(v, _UNSET) for v in variables]
        try:
            return impl(a, target, variables, bodies)
        finally:
            for v, s in zip(variables, saved, strict=True):
                _restore(a.locals, v, s)

    return run


def _quantifier(name: str, decisive: bool) -> Callable[..., Any]:
    @_looping
    def run(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> bool:
        (pred,) = bodies
        err: CelError | None = None
        for item in _items(name, target, len(variables) == 2):
            _bind_loop(a, variables, item)
            try:
                v: object = pred(a)  # object, not Any: ``v is decisive`` must not make ``decisive`` Any
            except CelError as exc:
                err = err or exc
                continue
            if v is decisive:
                return decisive
            if type(v) is not bool:
                err = err or no_overload(name, v)
        if err is not None:
            raise err
        return not decisive

    return run


@_looping
def _exists_one(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> bool:
    (pred,) = bodies
    count = 0
    for item in _items("exists_one", target, len(variables) == 2):
        _bind_loop(a, variables, item)
        v = pred(a)
        if type(v) is not bool:
            raise no_overload("exists_one", v)
        count += v
    return count == 1


def _filtered(a: Activation, name: str, target: Any, variables: list[str], bodies: list[Fn]) -> Any:
    """Yields each item (after binding it) whose optional filter body holds."""
    for item in _items(name, target, len(variables) == 2):
        _bind_loop(a, variables, item)
        if len(bodies) == 2:
            keep = bodies[0](a)
            if type(keep) is not bool:
                raise no_overload(name, keep)
            if not keep:
                continue
        yield item


@_looping
def _map(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> list[Any]:
    """map(x, [filter,] e) and transformList(i, v, [filter,] e): the same walk."""
    expr = bodies[-1]
    return [expr(a) for _ in _filtered(a, "map", target, variables, bodies)]


@_looping
def _filter(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> list[Any]:
    (pred,) = bodies
    out = []
    for item in _items("filter", target, False):
        _bind_loop(a, variables, item)
        keep = pred(a)
        if type(keep) is not bool:
            raise no_overload("filter", keep)
        if keep:
            out.append(item[0])
    return out


@_looping
def _transform_map(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> dict[Any, Any]:
    expr = bodies[-1]
    return {item[0]: expr(a) for item in _filtered(a, "transformMap", target, variables, bodies)}


@_looping
def _transform_map_entry(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> dict[Any, Any]:
    expr = bodies[-1]
    out: dict[Any, Any] = {}
    for _ in _filtered(a, "transformMapEntry", target, variables, bodies):
        entry = expr(a)
        if type(entry) is not dict:
            raise no_overload("transformMapEntry", entry)
        for k, v in entry.items():
            if map_contains(out, k):
                raise CelError(f"insert failed: key {k} already exists")
            out[k] = v
    return out


@_looping
def _sort_by(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> list[Any]:
    (key_fn,) = bodies
    items = _items("sortBy", target, False)
    keyed = []
    for item in items:
        _bind_loop(a, variables, item)
        keyed.append((key_fn(a), item[0]))
    library.sort_key_check([k for k, _ in keyed], "sortBy")
    keyed.sort(key=lambda kv: kv[0])
    return [v for _, v in keyed]


_MACRO_IMPLS: dict[tuple[str, int, int], Callable[..., Any]] = {
    ("all", 1, 1): _quantifier("all", False),
    ("all", 2, 1): _quantifier("all", False),
    ("exists", 1, 1): _quantifier("exists", True),
    ("exists", 2, 1): _quantifier("exists", True),
    ("exists_one", 1, 1): _exists_one,
    ("existsOne", 1, 1): _exists_one,
    ("existsOne", 2, 1): _exists_one,
    ("exists_one", 2, 1): _exists_one,
    ("map", 1, 1): _map,
    ("map", 1, 2): _map,
    ("filter", 1, 1): _filter,
    ("transformList", 2, 1): _map,
    ("transformList", 2, 2): _map,
    ("transformMap", 2, 1): _transform_map,
    ("transformMap", 2, 2): _transform_map,
    ("transformMapEntry", 2, 1): _transform_map_entry,
    ("transformMapEntry", 2, 2): _transform_map_entry,
    ("sortBy", 1, 1): _sort_by,
}
