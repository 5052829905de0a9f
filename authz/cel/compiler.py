"""Compiles CEL text once into a Python closure, so that evaluating a condition never re-parses or
re-interprets it.

cel-python's lark grammar parses the text (extended here with the optional-field syntax ``.?`` and
``[?]`` that Cerbos enables); every parse-tree node then becomes a small closure ``fn(act)`` over
an ``Activation``. Constant sub-expressions are folded at compile time, which also catches what
cel-go's literal validators catch (``duration("1d")``, a bad regex). A light static type pass
rejects the mistakes cel-go's type checker rejects (``1 + 2.0``, an unknown function or field).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

import lark

from . import library, operators
from .checker import (
    _CONVERSIONS,
    _KNOWN,
    _LITERAL_VALIDATED,
    _MACROS_1,
    _MACROS_2,
    _MESSAGE_FIELDS,
    _NAMESPACES,
    _PRIMITIVES,
    _RESULT_TYPES,
    _SET_FUNCTIONS,
    _check_binary,
    _static_type,
)
from .macros import _MACRO_IMPLS
from .parser import CelCompileError, ParseTree, _parse_bytes, _parse_int, _parse_string, parse
from .runtime import (
    _UNSET,
    Activation,
    Fn,
    Scope,
    Variable,
    _caller,
    _has_field,
    _index,
    _index_optional,
    _restore,
    _select,
    _select_optional,
)
from .values import (
    OPTIONAL_NONE,
    CelError,
    CelType,
    Message,
    Optional,
    Uint,
    cel_equals,
    check_int,
    field_name,
    from_json,
    no_overload,
    type_name,
)

__all__ = ["Activation", "CelCompileError", "CompiledExpression", "Scope", "Variable", "compile_expression", "parse"]


@dataclass
class Node:
    fn: Fn
    type: str = "dyn"
    const: bool = False
    value: Any = None
    elem: str | None = None  # the element type of a list literal, where all elements agree
    root: str | None = None  # "P" or "R" for those names and their fields, so ``R.attr.x`` is one step


def _const(value: Any, kind: str | None = None) -> Node:
    return Node(lambda a: value, kind or _static_type(value), True, value)


class Compiler:
    """Turns one parse tree into a ``Node``; one instance per expression."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.local_names: list[str] = []
        self.time_dependent = False
        self.external_refs = 0  # names compiled so far that read the request, variables or globals
        self.lowest_local_ref = 1 << 30  # the outermost comprehension variable referenced so far
        # How ``P`` / ``R`` and their ``attr`` maps are used: every ``P`` node should become a field
        # selection, every ``P.attr`` node a single named attribute (``P.attr.x``, ``has(P.attr.x)``).
        self.roots_made: dict[str, int] = {"P": 0, "R": 0}
        self.roots_selected: dict[str, int] = {"P": 0, "R": 0}
        self.attrs_made: dict[str, int] = {"P": 0, "R": 0}
        self.attrs_named: dict[str, int] = {"P": 0, "R": 0}
        self.request_used = False

    def attr_escapes(self) -> set[str]:
        """The roots whose whole ``attr`` map this expression may see (through ``request``, ``R``
        itself, ``R.attr`` as a map...). Where no expression of a policy set lets it escape, the
        engine hands the request's attributes over unconverted and each named attribute is
        converted as it is read (JSON numbers to doubles)."""
        if self.request_used:
            return {"P", "R"}
        return {
            root
            for root in ("P", "R")
            if self.roots_made[root] != self.roots_selected[root] or self.attrs_made[root] != self.attrs_named[root]
        }

    def error(self, tree: Any, message: str) -> CelCompileError:
        meta = getattr(tree, "meta", None)
        line = getattr(meta, "line", 1) if meta is not None and not meta.empty else 1
        column = getattr(meta, "column", 1) if meta is not None and not meta.empty else 1
        if isinstance(tree, lark.Token):
            line, column = tree.line or 1, tree.column or 1
        return CelCompileError(message, line, column)

    def compile(self, tree: ParseTree) -> Node:
        method: Callable[[ParseTree], Node] | None = getattr(self, "c_" + tree.data, None)
        if method is None:
            raise self.error(tree, f"unsupported CEL construct: {tree.data}")
        return method(tree)

    # -- structure ---------------------------------------------------------------------

    def _passthrough(self, tree: ParseTree) -> Node:
        return self.compile(tree.children[0])

    c_member = c_primary = c_paren_expr = _passthrough

    def c_expr(self, tree: ParseTree) -> Node:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        cond, then, other = (self.compile(c) for c in tree.children)
        self._expect_bool(tree, cond, "_?_:_")
        if cond.const:
            return then if cond.value else other
        cf, tf, of = cond.fn, then.fn, other.fn

        def ternary(a: Activation) -> Any:
            c = cf(a)
            if c is True:
                return tf(a)
            if c is False:
                return of(a)
            raise no_overload("_?_:_", c)

        return Node(ternary, then.type if then.type == other.type else "dyn")

    def c_conditionalor(self, tree: ParseTree) -> Node:
        return self._logical(tree, is_or=True)

    def c_conditionaland(self, tree: ParseTree) -> Node:
        return self._logical(tree, is_or=False)

    def _logical(self, tree: ParseTree, is_or: bool) -> Node:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        left, right = (self.compile(c) for c in tree.children)
        name = "_||_" if is_or else "_&&_"
        self._expect_bool(tree, left, name)
        self._expect_bool(tree, right, name)
        lf, rf = left.fn, right.fn
        decisive = is_or  # the value that decides the result on its own
        other = not decisive

        def logical(a: Activation) -> bool:
            try:
                lv: object = lf(a)  # object, not Any: ``lv is decisive`` must not make ``decisive`` Any
            except CelError as exc:
                return absorbing(a, exc)
            if lv is decisive:
                return decisive
            if lv is other:  # the right side decides, its error or wrong type included
                rv = rf(a)
                if rv is True or rv is False:
                    return rv
                raise no_overload(name, rv)
            return absorbing(a, no_overload(name, lv))

        def absorbing(a: Activation, err: Exception) -> bool:
            """The left side erred or is not a bool: the right side may still decide (CEL's
            commutative logic), else the left side's error stands."""
            try:
                rv: object = rf(a)
                if rv is decisive:
                    return decisive
            except CelError:
                pass
            try:
                raise err
            finally:
                del err  # this frame is in the error's traceback: holding it would make a cycle

        return self._fold(Node(logical, "bool"), left, right)

    def c_relation(self, tree: ParseTree) -> Node:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        op_tree, right_tree = tree.children
        op = {
            "relation_lt": "<",
            "relation_le": "<=",
            "relation_gt": ">",
            "relation_ge": ">=",
            "relation_eq": "==",
            "relation_ne": "!=",
            "relation_in": "in",
        }[op_tree.data]
        return self._binary(tree, op, self.compile(op_tree.children[0]), self.compile(right_tree))

    def c_addition(self, tree: ParseTree) -> Node:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        op_tree, right_tree = tree.children
        op = "+" if op_tree.data == "addition_add" else "-"
        return self._binary(tree, op, self.compile(op_tree.children[0]), self.compile(right_tree))

    def c_multiplication(self, tree: ParseTree) -> Node:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        op_tree, right_tree = tree.children
        op = {"multiplication_mul": "*", "multiplication_div": "/", "multiplication_mod": "%"}[op_tree.data]
        return self._binary(tree, op, self.compile(op_tree.children[0]), self.compile(right_tree))

    def _binary(self, tree: ParseTree, op: str, left: Node, right: Node) -> Node:
        result_type = _check_binary(op, left.type, right.type)
        if op in ("==", "!=") and left.elem and right.elem and left.elem != right.elem:
            result_type = None
        if result_type is None:
            raise self.error(
                tree,
                f"found no matching overload for '_{op}_' applied to '({left.type}, {right.type})'",
            )
        impl = operators.BINARY[op]
        lf, rf = left.fn, right.fn
        if op == "in" and right.const and type(right.value) is list and not right.value:
            # cel-go's constant folding turns membership in an empty literal into false,
            # without evaluating the left side (so an error there does not surface).
            return _const(False, "bool")
        if op == "in" and right.const and isinstance(right.value, list) and all(type(v) is str for v in right.value):
            members = frozenset(right.value)

            def in_strings(a: Activation) -> bool:
                v = lf(a)
                if type(v) is str:
                    return v in members
                found: bool = impl(v, right.value)
                return found

            return self._fold(Node(in_strings, "bool"), left, right)
        if op in ("==", "!="):
            return self._fold(_equality(op, left, right), left, right)
        return self._fold(Node(lambda a: impl(lf(a), rf(a)), result_type), left, right)

    def c_unary(self, tree: ParseTree) -> Node:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        op_tree, operand_tree = tree.children
        operand = self.compile(operand_tree)
        f = operand.fn
        if op_tree.data == "unary_not":
            self._expect_bool(tree, operand, "!_")
            return self._fold(Node(lambda a: operators.logical_not(f(a)), "bool"), operand)
        if operand.type not in ("dyn", "int", "double", "duration"):
            raise self.error(tree, f"found no matching overload for '-_' applied to '({operand.type})'")
        return self._fold(Node(lambda a: operators.neg(f(a)), operand.type), operand)

    # -- literals and constructors ------------------------------------------------------

    def c_literal(self, tree: ParseTree) -> Node:
        token = _token(tree.children[0])
        kind, text = token.type, token.value
        try:
            if kind == "INT_LIT":
                return _const(check_int(_parse_int(text)), "int")
            if kind == "UINT_LIT":
                return _const(Uint(_parse_int(text[:-1])), "uint")
            if kind == "FLOAT_LIT":
                return _const(float(text), "double")
            if kind in ("STRING_LIT", "MLSTRING_LIT"):
                return _const(_parse_string(text), "string")
            if kind == "BYTES_LIT":
                return _const(_parse_bytes(text[1:]), "bytes")
            if kind == "BOOL_LIT":
                return _const(text == "true", "bool")
            if kind == "NULL_LIT":
                return _const(None, "null_type")
        except (CelError, ValueError) as exc:
            raise self.error(token, f"invalid literal {text}: {exc}") from None
        raise self.error(token, f"unsupported literal {text}")

    def c_list_lit(self, tree: ParseTree) -> Node:
        elems = tree.children[0].children if tree.children else []
        if not elems:
            return _const([], "list")
        items: list[Node] = []
        optional: list[bool] = []
        for elem in elems:
            inner = elem.children[0]
            is_opt = isinstance(inner, lark.Tree) and inner.data == "opt_elem"
            items.append(self.compile(inner.children[0] if is_opt else inner))
            optional.append(is_opt)
        fns = [i.fn for i in items]
        if any(optional):
            pairs = list(zip(fns, optional, strict=True))

            def build_optional(a: Activation) -> list[Any]:
                out = []
                for f, opt in pairs:
                    v = f(a)
                    if opt:
                        if type(v) is not Optional:
                            raise no_overload("optional element", v)
                        if v.present:
                            out.append(v.value)
                    else:
                        out.append(v)
                return out

            return self._fold(Node(build_optional, "list"), *items)
        kinds = {i.type for i in items}
        elem = kinds.pop() if len(kinds) == 1 and items[0].type in _KNOWN else None
        node = self._fold(Node(lambda a: [f(a) for f in fns], "list"), *items)
        node.elem = elem
        return node

    def c_map_lit(self, tree: ParseTree) -> Node:
        if not tree.children:
            return _const({}, "map")
        entries: list[tuple[Node, Node, bool]] = []
        for entry in tree.children[0].children:
            key_tree, value_tree = entry.children
            is_opt = isinstance(key_tree, lark.Tree) and key_tree.data == "opt_elem"
            k = self.compile(key_tree.children[0] if is_opt else key_tree)
            if k.type not in ("dyn", "int", "uint", "bool", "string"):
                raise self.error(key_tree, f"unsupported map key type: {k.type}")
            entries.append((k, self.compile(value_tree), is_opt))
        fns = [(k.fn, v.fn, opt) for k, v, opt in entries]

        def build(a: Activation) -> dict[Any, Any]:
            out: dict[Any, Any] = {}
            for kf, vf, opt in fns:
                key = kf(a)
                if type(key) not in (str, int, Uint, bool):
                    raise CelError(f"unsupported key type: {type_name(key)}")
                value = vf(a)
                if opt:
                    if type(value) is not Optional:
                        raise no_overload("optional entry", value)
                    if not value.present:
                        continue
                    value = value.value
                out[key] = value  # as in cel-go, a repeated key keeps its last value
            return out

        return self._fold(Node(build, "map"), *(n for k, v, _ in entries for n in (k, v)))

    def c_member_object(self, tree: ParseTree) -> Node:
        raise self.error(tree, "message construction is not supported in Cerbos conditions")

    # -- names, fields, indexes ---------------------------------------------------------

    def c_ident(self, tree: ParseTree) -> Node:
        name = _token(tree.children[0]).value
        if name in self.local_names:
            index = len(self.local_names) - 1 - self.local_names[::-1].index(name)
            self.lowest_local_ref = min(self.lowest_local_ref, index)
            return Node(lambda a: a.locals[name])
        self.external_refs += 1
        if name == "request":
            self.request_used = True
            return Node(lambda a: a.request, "request")
        if name == "P":
            self.roots_made["P"] += 1
            return Node(lambda a: a.P, "principal", root="P")
        if name == "R":
            self.roots_made["R"] += 1
            return Node(lambda a: a.R, "resource", root="R")
        if name == "runtime":
            return Node(lambda a: a.current_runtime(), "runtime")
        if name in ("G", "globals"):
            return Node(lambda a: a.globals, "map")
        if name in ("V", "variables"):
            return Node(lambda a: None, "variables")
        if name in ("C", "constants"):
            return Node(lambda a: None, "constants")
        if name in ("int", "uint", "double", "string", "bytes", "bool", "list", "map", "null_type", "type"):
            return _const(CelType(name), "type")
        raise self.error(tree, f"undeclared reference to '{name}' (in container '')")

    def c_dot_ident(self, tree: ParseTree) -> Node:
        return self.c_ident(tree)

    def c_member_dot(self, tree: ParseTree) -> Node:
        target_tree, name_token = tree.children
        name = _token(name_token).value
        target = self.compile(target_tree)
        if target.type == "variables":
            variable = self.scope.variables.get(name)
            if variable is None:
                raise self.error(name_token, f"undefined variable '{name}'")
            return Node(lambda a: a.var(variable), variable.static_type)
        if target.type == "constants":
            if name not in self.scope.constants:
                raise self.error(name_token, f"undefined constant '{name}'")
            return _const(self.scope.constants[name])
        if target.type in _MESSAGE_FIELDS:
            fields = _MESSAGE_FIELDS[target.type]
            name = field_name(name)  # the protobuf spelling reads the same field
            if name not in fields:
                raise self.error(name_token, f"undefined field '{name}'")
            if target.root is not None and target.type in ("principal", "resource"):
                self.roots_selected[target.root] += 1
                if name == "attr":
                    self.attrs_made[target.root] += 1
                return _request_field(target.root, name, fields[name])
            tf = target.fn
            return Node(lambda a: tf(a).fields[name], fields[name])
        if target.type in _PRIMITIVES or target.type in ("list", "timestamp", "duration"):
            raise self.error(name_token, f"type '{target.type}' does not support field selection")
        if target.root is not None and target.type == "map":
            self.attrs_named[target.root] += 1
            return _attribute(target.root, name)
        tf = target.fn
        return self._fold(Node(lambda a: _select(tf(a), name)), target)

    def c_member_dot_opt(self, tree: ParseTree) -> Node:
        target_tree, name_token = tree.children
        name = _token(name_token).value
        target = self.compile(target_tree)
        tf = target.fn
        return self._fold(Node(lambda a: _select_optional(tf(a), name), "optional_type"), target)

    def c_member_index(self, tree: ParseTree) -> Node:
        target, key = (self.compile(c) for c in tree.children)
        name = _ident_name(tree.children[0])
        if name in _POLICY_MAPS and name not in self.local_names:
            # Cerbos types V, C and G as cerbos.Variables, which has fields but no index operator.
            raise self.error(
                tree, f"found no matching overload for '_[_]' applied to '(cerbos.Variables, {key.type or 'dyn'})'"
            )
        tf, kf = target.fn, key.fn
        return self._fold(Node(lambda a: _index(tf(a), kf(a))), target, key)

    def c_member_index_opt(self, tree: ParseTree) -> Node:
        target, key = (self.compile(c) for c in tree.children)
        tf, kf = target.fn, key.fn
        return self._fold(Node(lambda a: _index_optional(tf(a), kf(a)), "optional_type"), target, key)

    # -- calls ---------------------------------------------------------------------------

    def c_ident_arg(self, tree: ParseTree) -> Node:
        name = _token(tree.children[0]).value
        arg_trees = tree.children[1].children if len(tree.children) > 1 else []
        if name == "has":
            return self._has(tree, arg_trees)
        if name == "now":
            if arg_trees:
                raise self.error(tree, "now() takes no arguments")
            self.time_dependent = True
            return Node(lambda a: a.now, "timestamp")
        args = [self.compile(t) for t in arg_trees]
        if name == "timeSince":
            return self._time_since(tree, args)
        return self._call_global(tree, name, args)

    def c_dot_ident_arg(self, tree: ParseTree) -> Node:
        return self.c_ident_arg(tree)

    def c_member_dot_arg(self, tree: ParseTree) -> Node:
        target_tree, name_token = tree.children[0], tree.children[1]
        name = _token(name_token).value
        arg_trees = tree.children[2].children if len(tree.children) > 2 else []
        namespace = _namespace_of(target_tree)
        if namespace is not None and namespace not in self.local_names:
            qualified = f"{namespace}.{name}"
            if qualified == "cel.bind":
                return self._bind(tree, arg_trees)
            if qualified in library.GLOBALS:
                return self._call_global(tree, qualified, [self.compile(t) for t in arg_trees])
            if namespace in _NAMESPACES:
                raise self.error(tree, f"undeclared reference to '{qualified}' (in container '')")
        if name in _MACROS_1 | _MACROS_2 and arg_trees and _ident_name(arg_trees[0]) is not None:
            return self._macro(tree, target_tree, name, arg_trees)
        if name in ("optMap", "optFlatMap") and len(arg_trees) == 2 and _ident_name(arg_trees[0]):
            return self._opt_map(tree, target_tree, name, arg_trees)
        target = self.compile(target_tree)
        args = [self.compile(t) for t in arg_trees]
        if name == "timeSince":
            return self._time_since(tree, [target, *args])
        fn = library.METHODS.get(name)
        if fn is None:
            raise self.error(name_token, f"undeclared reference to '{name}' (in container '')")
        if name == "matches" and args and args[0].const and args[0].type == "string":
            self._validate_literal(tree, "matches", library.compile_regex, args[0].value)
        self._check_list_elements(tree, name, [target, *args])
        fns = _argument_fns(name, [target, *args])
        node = Node(_caller(fn, fns), _RESULT_TYPES.get(name, "dyn"))
        if name == "format" and target.const and all(a.const for a in args):
            try:
                node.fn(_FOLDING_ACTIVATION)
            except CelError as exc:
                raise self.error(tree, str(exc)) from None
        return self._fold(node, target, *args)

    def _call_global(self, tree: ParseTree, name: str, args: list[Node]) -> Node:
        fn = library.GLOBALS.get(name)
        if fn is None:
            raise self.error(tree, f"undeclared reference to '{name}' (in container '')")
        result_type = _RESULT_TYPES.get(name, "dyn")
        if name in _CONVERSIONS and len(args) == 1 and args[0].type not in ("dyn", *_CONVERSIONS[name]):
            raise self.error(tree, f"found no matching overload for '{name}' applied to '({args[0].type})'")
        if name in _LITERAL_VALIDATED and args and args[0].const and args[0].type == "string":
            self._validate_literal(tree, name, fn, args[0].value)
        if name in ("math.greatest", "math.least") and len(args) == 1 and args[0].const and args[0].value == []:
            raise self.error(tree, f"{name}() invalid single argument value")
        self._check_list_elements(tree, name, args)
        node = Node(_caller(fn, _argument_fns(name, args)), result_type)
        return self._fold(node, *args)

    def _check_list_elements(self, tree: ParseTree, name: str, args: list[Node]) -> None:
        """Set functions over two list literals of different element types fail cel-go's checker."""
        if name in _SET_FUNCTIONS and len(args) == 2 and args[0].elem and args[1].elem and args[0].elem != args[1].elem:
            raise self.error(
                tree,
                f"found no matching overload for '{name}' applied to '(list({args[0].elem}), list({args[1].elem}))'",
            )

    def _validate_literal(self, tree: ParseTree, name: str, fn: Callable[..., Any], value: Any) -> None:
        """cel-go's literal validators: a constant that can never parse is a compile error."""
        try:
            fn(value)
        except CelError:
            raise self.error(tree, f"invalid {name} argument") from None

    def _time_since(self, tree: ParseTree, args: list[Node]) -> Node:
        if len(args) != 1:
            raise self.error(tree, "timeSince takes one timestamp")
        self.time_dependent = True
        f = args[0].fn

        def since(a: Activation) -> timedelta:
            ts = f(a)
            if type(ts) is not datetime:
                raise no_overload("timeSince", ts)
            return a.now - ts

        return Node(since, "duration")

    def _has(self, tree: ParseTree, arg_trees: list[Any]) -> Node:
        if len(arg_trees) != 1:
            raise self.error(tree, "invalid argument to has() macro")
        inner = _unwrap(arg_trees[0])
        if not isinstance(inner, lark.Tree) or inner.data != "member_dot":
            raise self.error(tree, "invalid argument to has() macro")
        target_tree, name_token = inner.children
        name = _token(name_token).value
        target = self.compile(target_tree)
        if target.type == "variables" or target.type == "constants":
            raise self.error(tree, "has() is not supported on variables or constants")
        if target.root is not None and target.type == "map":
            self.attrs_named[target.root] += 1
            return _has_attribute(target.root, name)
        tf = target.fn
        return Node(lambda a: _has_field(tf(a), name), "bool")

    def _bind(self, tree: ParseTree, arg_trees: list[Any]) -> Node:
        var = _ident_name(arg_trees[0]) if len(arg_trees) == 3 else None
        if var is None:
            raise self.error(tree, "cel.bind() takes a variable name, a value and an expression")
        init = self.compile(arg_trees[1])
        self.local_names.append(var)
        try:
            body = self.compile(arg_trees[2])
        finally:
            self.local_names.pop()
        inf, bf = init.fn, body.fn

        def bind(a: Activation) -> Any:
            saved = a.locals.get(var, _UNSET)
            a.locals[var] = inf(a)
            try:
                return bf(a)
            finally:
                _restore(a.locals, var, saved)

        return Node(bind, body.type)

    def _opt_map(self, tree: ParseTree, target_tree: Any, name: str, arg_trees: list[Any]) -> Node:
        target = self.compile(target_tree)
        var = _ident_name(arg_trees[0])
        if var is None:  # the caller saw a name there
            raise self.error(tree, f"{name}() needs a variable name first")
        self.local_names.append(var)
        try:
            body = self.compile(arg_trees[1])
        finally:
            self.local_names.pop()
        tf, bf = target.fn, body.fn
        flat = name == "optFlatMap"

        def opt_map(a: Activation) -> Optional:
            o = tf(a)
            if type(o) is not Optional:
                raise no_overload(name, o)
            if not o.present:
                return OPTIONAL_NONE
            saved = a.locals.get(var, _UNSET)
            a.locals[var] = o.value
            try:
                v = bf(a)
            finally:
                _restore(a.locals, var, saved)
            if flat:
                if type(v) is not Optional:
                    raise no_overload(name, v)
                return v
            return Optional(v, True)

        return Node(opt_map, "optional_type")

    def _macro(self, tree: ParseTree, target_tree: Any, name: str, arg_trees: list[Any]) -> Node:
        target = self.compile(target_tree)
        names = [_ident_name(t) for t in arg_trees]
        two_var = (
            name in _MACROS_2
            and len(arg_trees) >= 3
            and names[1] is not None
            and name not in ("map", "filter", "sortBy")
            or name.startswith("transform")
        )
        n_vars = 2 if two_var else 1
        if any(n is None for n in names[:n_vars]):
            raise self.error(tree, f"{name}() macro needs variable names first")
        variables = [n for n in names[:n_vars] if n is not None]  # all of them, as just checked
        base = len(self.local_names)
        self.local_names.extend(variables)
        refs_before, lowest_before = self.external_refs, self.lowest_local_ref
        self.lowest_local_ref = 1 << 30
        try:
            bodies = [self.compile(t) for t in arg_trees[n_vars:]]
        finally:
            del self.local_names[-n_vars:]
        # Pure: reads neither the request nor any variable of an enclosing comprehension.
        pure = self.external_refs == refs_before and self.lowest_local_ref >= base and not self.time_dependent
        self.lowest_local_ref = min(lowest_before, self.lowest_local_ref)
        if not bodies or len(bodies) > 2:
            raise self.error(tree, f"wrong number of arguments to {name}()")
        impl = _MACRO_IMPLS.get((name, n_vars, len(bodies)))
        if impl is None:
            raise self.error(tree, f"wrong number of arguments to {name}()")
        tf = target.fn
        body_fns = [b.fn for b in bodies]
        result = {
            "map": "list",
            "filter": "list",
            "transformList": "list",
            "transformMap": "map",
            "transformMapEntry": "map",
            "sortBy": "list",
        }.get(name, "bool")
        node = Node(lambda a: impl(a, tf(a), variables, body_fns), result)
        if pure and target.const:
            # A macro over a constant that reads nothing else is folded, as cel-go folds it.
            try:
                value = node.fn(Activation(_FOLDING_ACTIVATION.request, _FOLDING_ACTIVATION.now))
            except (CelError, KeyError, RecursionError):
                return node
            return Node(lambda a: value, result, True, value)
        return node

    # -- helpers -------------------------------------------------------------------------

    def _expect_bool(self, tree: ParseTree, node: Node, op: str) -> None:
        if node.type not in ("bool", "dyn"):
            raise self.error(tree, f"found no matching overload for '{op}' applied to '({node.type})'")

    def _fold(self, node: Node, *children: Node) -> Node:
        """Evaluates a node now when all its inputs are constants (errors stay runtime errors)."""
        if children and not all(c.const for c in children):
            return node
        if not children:
            return node
        try:
            value = node.fn(_FOLDING_ACTIVATION)
        except CelError:
            return node
        return Node(lambda a: value, node.type, True, value)


def _argument_fns(name: str, args: list[Node]) -> list[Fn]:
    """The closures of a call's arguments; a literal regular expression is compiled here, once."""
    fns = [a.fn for a in args]
    i = library.REGEX_ARGUMENT.get(name)
    if i is not None and i < len(args) and args[i].const and type(args[i].value) is str:
        compiled = library.precompiled_regex(args[i].value)
        if compiled is not None:
            fns[i] = lambda a: compiled
    return fns


def _request_field(root: str, name: str, kind: str) -> Node:
    """``P.name`` or ``R.name``: a field of the request's principal or resource message."""
    message = attrgetter(root)
    return Node(lambda a: message(a).fields[name], kind, root=root)


def _attribute(root: str, name: str) -> Node:
    """``P.attr.name`` or ``R.attr.name`` in one step; anything unusual takes ``_select``'s path."""
    message = attrgetter(root)

    def attribute(a: Activation) -> Any:
        attrs = message(a).fields["attr"]
        if type(attrs) is dict and name in attrs:
            value = attrs[name]
            kind = type(value)
            if kind is int:  # the request's attributes may be unconverted (see attr_escapes)
                return float(value)
            if kind is dict or kind is list:
                return from_json(value)
            return value
        return _select(attrs, name)

    return Node(attribute)


def _has_attribute(root: str, name: str) -> Node:
    """``has(P.attr.name)`` or ``has(R.attr.name)`` in one step."""
    message = attrgetter(root)

    def has_attribute(a: Activation) -> bool:
        attrs = message(a).fields["attr"]
        return name in attrs if type(attrs) is dict else _has_field(attrs, name)

    return Node(has_attribute, "bool")


def _equality(op: str, left: Node, right: Node) -> Node:
    """``==`` / ``!=``, with the common comparison against a string literal done directly."""
    lf, rf = left.fn, right.fn
    negate = op == "!="
    literal = right if right.const else left if left.const else None
    if literal is not None and type(literal.value) is str:
        text, other = literal.value, (lf if literal is right else rf)

        def against_string(a: Activation) -> bool:
            v = other(a)
            same = v == text if type(v) is str else cel_equals(v, text)
            return same is not negate

        return Node(against_string, "bool")
    if negate:
        return Node(lambda a: not cel_equals(lf(a), rf(a)), "bool")
    return Node(lambda a: cel_equals(lf(a), rf(a)), "bool")


def _unwrap(tree: Any) -> Any:
    """The innermost node of a chain of single-child wrappers (expr -> ... -> member)."""
    while (
        isinstance(tree, lark.Tree)
        and len(tree.children) == 1
        and tree.data
        in (
            "expr",
            "conditionalor",
            "conditionaland",
            "relation",
            "addition",
            "multiplication",
            "unary",
            "member",
            "primary",
        )
    ):
        tree = tree.children[0]
    return tree


_POLICY_MAPS = frozenset({"V", "variables", "C", "constants", "G", "globals"})


def _ident_name(tree: Any) -> str | None:
    inner = _unwrap(tree)
    if isinstance(inner, lark.Tree) and inner.data == "ident":
        name: str = _token(inner.children[0]).value
        return name
    return None


def _token(branch: object) -> lark.Token:
    """A child that its grammar rule makes a token (a name, a literal)."""
    if not isinstance(branch, lark.Token):
        raise TypeError(f"the CEL grammar has a token here, not {branch!r}")
    return branch


def _namespace_of(tree: Any) -> str | None:
    """``math`` for the target of ``math.greatest(...)``."""
    return _ident_name(tree)


_FOLDING_ACTIVATION = Activation(
    Message("cerbos.engine.v1.Request", {"principal": None, "resource": None, "auxData": None}),
    datetime.fromtimestamp(0).astimezone(),
)


@dataclass(frozen=True)
class CompiledExpression:
    """A CEL expression compiled once: call ``evaluate(activation)`` per request."""

    source: str
    evaluate: Fn
    static_type: str
    constant: bool


def compile_expression(text: str, scope: Scope | None = None) -> CompiledExpression:
    """Parses and compiles ``text``; raises ``CelCompileError`` with the position of the problem."""
    tree = parse(text)
    scope = scope or Scope()
    compiler = Compiler(scope)
    node = compiler.compile(tree)
    scope.attr_escapes |= compiler.attr_escapes()
    return CompiledExpression(text, node.fn, node.type, node.const)
