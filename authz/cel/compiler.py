"""Compiles CEL text once into a Python closure, so that evaluating a condition never re-parses or
re-interprets it.

cel-python's lark grammar parses the text (extended here with the optional-field syntax ``.?`` and
``[?]`` that Cerbos enables); every parse-tree node then becomes a small closure ``fn(act)`` over
an ``Activation``. Constant sub-expressions are folded at compile time, which also catches what
cel-go's literal validators catch (``duration("1d")``, a bad regex). A light static type pass
rejects the mistakes cel-go's type checker rejects (``1 + 2.0``, an unknown function or field).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import celpy
import lark

from . import library, operators
from .cerbos_ext import Hierarchy
from .values import (
    OPTIONAL_NONE,
    CelError,
    CelType,
    Message,
    Optional,
    Uint,
    check_int,
    map_contains,
    map_lookup,
    no_overload,
    type_name,
)

Fn = Callable[["Activation"], Any]


class CelCompileError(Exception):
    """A CEL expression that cannot be compiled; line and column are 1-based within the expression."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


# ---- the parser --------------------------------------------------------------------------

_GRAMMAR_ADDITIONS = """
member_dot_opt : member ".?" IDENT
member_index_opt : member "[" "?" expr "]"
list_elems : list_elem ("," list_elem)* [","]
list_elem : expr | opt_elem
opt_elem : "?" expr
map_entries : map_entry ("," map_entry)* [","]
map_entry : (expr | opt_elem) ":" expr
"""


def _build_parser() -> lark.Lark:
    grammar = (Path(celpy.__file__).parent / "cel.lark").read_text()
    grammar = grammar.replace(
        "member         : member_dot | member_dot_arg | member_index | member_object | primary",
        "member         : member_dot | member_dot_arg | member_index | member_object | primary"
        " | member_dot_opt | member_index_opt",
    )
    # Literals as cel-go parses them: optional elements (?x) and trailing commas.
    grammar = grammar.replace('list_lit       : "[" [exprlist] "]"', 'list_lit       : "[" [list_elems] "]"')
    grammar = grammar.replace('map_lit        : "{" [mapinits] "}"', 'map_lit        : "{" [map_entries] "}"')
    return lark.Lark(
        grammar + _GRAMMAR_ADDITIONS,
        parser="lalr",
        start="expr",
        g_regex_flags=re.M,
        lexer_callbacks={"IDENT": _bool_literals},
        propagate_positions=True,
        maybe_placeholders=False,
        priority="invert",
    )


def _bool_literals(t: lark.Token) -> lark.Token:
    if t.value in ("true", "false"):
        return lark.Token("BOOL_LIT", t.value)
    return t


_PARSER: lark.Lark | None = None


def parse(text: str) -> lark.Tree:
    global _PARSER
    if _PARSER is None:
        _PARSER = _build_parser()
    try:
        return _PARSER.parse(text)
    except lark.exceptions.UnexpectedInput as exc:
        line = getattr(exc, "line", 1) or 1
        column = getattr(exc, "column", 1) or 1
        found = getattr(exc, "token", None) or getattr(exc, "char", "")
        raise CelCompileError(f"Syntax error: unexpected {found!s:.20}", line, column) from None


# ---- runtime ----------------------------------------------------------------------------


class Activation:
    """Everything one evaluation can see: the request messages, the frozen clock, globals,
    the comprehension variables in scope, and the per-request cache of policy variables."""

    __slots__ = ("request", "P", "R", "runtime", "globals", "now", "locals", "var_cache")

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
        self.runtime = runtime or Message("cerbos.Runtime", {"effectiveDerivedRoles": []})
        self.locals: dict[str, Any] = {}
        self.var_cache: dict[int, Any] = {}

    def var(self, variable: Variable) -> Any:
        """A policy variable, evaluated at most once per request.

        A variable whose expression fails is left undefined, as Cerbos leaves it, so reading it
        is the error "undefined field" (the variable's own error is the cause)."""
        key = id(variable)
        cache = self.var_cache
        if key in cache:
            value = cache[key]
            if type(value) is CelError:
                raise value
            return value
        try:
            value = variable.fn(self)
        except CelError as exc:
            error = CelError(f"undefined field '{variable.name}'")
            error.__cause__ = exc
            cache[key] = error
            raise error from exc
        cache[key] = value
        return value


@dataclass(eq=False)
class Variable:
    """A compiled policy variable (``V.name``)."""

    name: str
    fn: Fn
    static_type: str = "dyn"


@dataclass
class Scope:
    """What an expression may name: the policy's variables and constants."""

    variables: dict[str, Variable] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    # Names of variables being defined, to report references to undefined ones helpfully.
    allow_globals: bool = True


@dataclass
class Node:
    fn: Fn
    type: str = "dyn"
    const: bool = False
    value: Any = None
    elem: str | None = None  # the element type of a list literal, where all elements agree


def _const(value: Any, kind: str | None = None) -> Node:
    return Node(lambda a: value, kind or _static_type(value), True, value)


def _static_type(value: Any) -> str:
    name = type_name(value)
    return {"google.protobuf.Timestamp": "timestamp", "google.protobuf.Duration": "duration"}.get(name, name)


# Message types in Cerbos's environment, with the static type of each field.
_MESSAGE_FIELDS = {
    "request": {"principal": "principal", "resource": "resource", "auxData": "auxData"},
    "principal": {"id": "string", "roles": "list", "attr": "map", "policyVersion": "string", "scope": "string"},
    "resource": {"kind": "string", "id": "string", "attr": "map", "policyVersion": "string", "scope": "string"},
    "auxData": {"jwt": "map", "jwts": "map"},
    "runtime": {"effectiveDerivedRoles": "list"},
}

_NAMESPACES = {"math", "strings", "sets", "lists", "base64", "json", "regex", "optional", "cel", "ip"}

_PRIMITIVES = {"int", "uint", "double", "string", "bytes", "bool", "null_type"}
_NUMERIC = {"int", "uint", "double"}

_MACROS_1 = {"all", "exists", "exists_one", "existsOne", "map", "filter", "sortBy"}
_MACROS_2 = {"all", "exists", "existsOne", "exists_one", "transformList", "transformMap", "transformMapEntry"}


class Compiler:
    """Turns one parse tree into a ``Node``; one instance per expression."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.local_names: list[str] = []
        self.time_dependent = False
        self.external_refs = 0  # names compiled so far that read the request, variables or globals
        self.lowest_local_ref = 1 << 30  # the outermost comprehension variable referenced so far

    def error(self, tree: Any, message: str) -> CelCompileError:
        meta = getattr(tree, "meta", None)
        line = getattr(meta, "line", 1) if meta is not None and not meta.empty else 1
        column = getattr(meta, "column", 1) if meta is not None and not meta.empty else 1
        if isinstance(tree, lark.Token):
            line, column = tree.line or 1, tree.column or 1
        return CelCompileError(message, line, column)

    def compile(self, tree: lark.Tree) -> Node:
        method = getattr(self, "c_" + tree.data, None)
        if method is None:
            raise self.error(tree, f"unsupported CEL construct: {tree.data}")
        return method(tree)

    # -- structure ---------------------------------------------------------------------

    def _passthrough(self, tree: lark.Tree) -> Node:
        return self.compile(tree.children[0])

    c_member = c_primary = c_paren_expr = _passthrough

    def c_expr(self, tree: lark.Tree) -> Node:
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

    def c_conditionalor(self, tree: lark.Tree) -> Node:
        return self._logical(tree, is_or=True)

    def c_conditionaland(self, tree: lark.Tree) -> Node:
        return self._logical(tree, is_or=False)

    def _logical(self, tree: lark.Tree, is_or: bool) -> Node:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        left, right = (self.compile(c) for c in tree.children)
        name = "_||_" if is_or else "_&&_"
        self._expect_bool(tree, left, name)
        self._expect_bool(tree, right, name)
        lf, rf = left.fn, right.fn
        short = is_or  # the value that decides the result on its own

        def logical(a: Activation) -> bool:
            err: Exception | None = None
            try:
                lv = lf(a)
            except CelError as exc:
                lv, err = None, exc
            if lv is short:
                return short
            if lv is not (not short) and err is None:
                err = no_overload(name, lv)
            try:
                rv = rf(a)
            except CelError as exc:
                raise err or exc from None
            if rv is short:
                return short
            if rv is not (not short):
                raise err or no_overload(name, rv)
            if err is not None:
                raise err
            return not short

        return self._fold(Node(logical, "bool"), left, right)

    def c_relation(self, tree: lark.Tree) -> Node:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        op_tree, right_tree = tree.children
        op = {"relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=",
              "relation_eq": "==", "relation_ne": "!=", "relation_in": "in"}[op_tree.data]
        return self._binary(tree, op, self.compile(op_tree.children[0]), self.compile(right_tree))

    def c_addition(self, tree: lark.Tree) -> Node:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        op_tree, right_tree = tree.children
        op = "+" if op_tree.data == "addition_add" else "-"
        return self._binary(tree, op, self.compile(op_tree.children[0]), self.compile(right_tree))

    def c_multiplication(self, tree: lark.Tree) -> Node:
        if len(tree.children) == 1:
            return self.compile(tree.children[0])
        op_tree, right_tree = tree.children
        op = {"multiplication_mul": "*", "multiplication_div": "/", "multiplication_mod": "%"}[op_tree.data]
        return self._binary(tree, op, self.compile(op_tree.children[0]), self.compile(right_tree))

    def _binary(self, tree: lark.Tree, op: str, left: Node, right: Node) -> Node:
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
        if op == "in" and right.const and isinstance(right.value, list) and all(
            type(v) is str for v in right.value
        ):
            members = frozenset(right.value)

            def in_strings(a: Activation) -> bool:
                v = lf(a)
                if type(v) is str:
                    return v in members
                return impl(v, right.value)

            return self._fold(Node(in_strings, "bool"), left, right)
        return self._fold(Node(lambda a: impl(lf(a), rf(a)), result_type), left, right)

    def c_unary(self, tree: lark.Tree) -> Node:
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

    def c_literal(self, tree: lark.Tree) -> Node:
        token = tree.children[0]
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

    def c_list_lit(self, tree: lark.Tree) -> Node:
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

            def build_optional(a: Activation) -> list:
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

    def c_map_lit(self, tree: lark.Tree) -> Node:
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

        def build(a: Activation) -> dict:
            out: dict = {}
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

    def c_member_object(self, tree: lark.Tree) -> Node:
        raise self.error(tree, "message construction is not supported in Cerbos conditions")

    # -- names, fields, indexes ---------------------------------------------------------

    def c_ident(self, tree: lark.Tree) -> Node:
        name = tree.children[0].value
        if name in self.local_names:
            index = len(self.local_names) - 1 - self.local_names[::-1].index(name)
            self.lowest_local_ref = min(self.lowest_local_ref, index)
            return Node(lambda a: a.locals[name])
        self.external_refs += 1
        if name == "request":
            return Node(lambda a: a.request, "request")
        if name == "P":
            return Node(lambda a: a.P, "principal")
        if name == "R":
            return Node(lambda a: a.R, "resource")
        if name == "runtime":
            return Node(lambda a: a.runtime, "runtime")
        if name in ("G", "globals"):
            return Node(lambda a: a.globals, "map")
        if name in ("V", "variables"):
            return Node(lambda a: None, "variables")
        if name in ("C", "constants"):
            return Node(lambda a: None, "constants")
        if name in ("int", "uint", "double", "string", "bytes", "bool", "list", "map", "null_type", "type"):
            return _const(CelType(name), "type")
        raise self.error(tree, f"undeclared reference to '{name}' (in container '')")

    def c_dot_ident(self, tree: lark.Tree) -> Node:
        return self.c_ident(tree)

    def c_member_dot(self, tree: lark.Tree) -> Node:
        target_tree, name_token = tree.children
        name = name_token.value
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
            if name not in fields:
                raise self.error(name_token, f"undefined field '{name}'")
            tf = target.fn
            return Node(lambda a: tf(a).fields[name], fields[name])
        if target.type in _PRIMITIVES or target.type in ("list", "timestamp", "duration"):
            raise self.error(name_token, f"type '{target.type}' does not support field selection")
        tf = target.fn
        return self._fold(Node(lambda a: _select(tf(a), name)), target)

    def c_member_dot_opt(self, tree: lark.Tree) -> Node:
        target_tree, name_token = tree.children
        name = name_token.value
        target = self.compile(target_tree)
        tf = target.fn
        return self._fold(Node(lambda a: _select_optional(tf(a), name), "optional_type"), target)

    def c_member_index(self, tree: lark.Tree) -> Node:
        target, key = (self.compile(c) for c in tree.children)
        tf, kf = target.fn, key.fn
        return self._fold(Node(lambda a: _index(tf(a), kf(a))), target, key)

    def c_member_index_opt(self, tree: lark.Tree) -> Node:
        target, key = (self.compile(c) for c in tree.children)
        tf, kf = target.fn, key.fn
        return self._fold(Node(lambda a: _index_optional(tf(a), kf(a)), "optional_type"), target, key)

    # -- calls ---------------------------------------------------------------------------

    def c_ident_arg(self, tree: lark.Tree) -> Node:
        name = tree.children[0].value
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

    def c_dot_ident_arg(self, tree: lark.Tree) -> Node:
        return self.c_ident_arg(tree)

    def c_member_dot_arg(self, tree: lark.Tree) -> Node:
        target_tree, name_token = tree.children[0], tree.children[1]
        name = name_token.value
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
        fns = [target.fn] + [a.fn for a in args]
        node = Node(_caller(fn, fns), _RESULT_TYPES.get(name, "dyn"))
        if name == "format" and target.const and all(a.const for a in args):
            try:
                node.fn(_FOLDING_ACTIVATION)
            except CelError as exc:
                raise self.error(tree, str(exc)) from None
        return self._fold(node, target, *args)

    def _call_global(self, tree: lark.Tree, name: str, args: list[Node]) -> Node:
        fn = library.GLOBALS.get(name)
        if fn is None:
            raise self.error(tree, f"undeclared reference to '{name}' (in container '')")
        result_type = _RESULT_TYPES.get(name, "dyn")
        if name in _CONVERSIONS and len(args) == 1 and args[0].type not in ("dyn", *_CONVERSIONS[name]):
            raise self.error(
                tree, f"found no matching overload for '{name}' applied to '({args[0].type})'"
            )
        if name in _LITERAL_VALIDATED and args and args[0].const and args[0].type == "string":
            self._validate_literal(tree, name, fn, args[0].value)
        if name in ("math.greatest", "math.least") and len(args) == 1 and args[0].const and args[0].value == []:
            raise self.error(tree, f"{name}() invalid single argument value")
        self._check_list_elements(tree, name, args)
        node = Node(_caller(fn, [a.fn for a in args]), result_type)
        return self._fold(node, *args)

    def _check_list_elements(self, tree: lark.Tree, name: str, args: list[Node]) -> None:
        """Set functions over two list literals of different element types fail cel-go's checker."""
        if name in _SET_FUNCTIONS and len(args) == 2 and args[0].elem and args[1].elem \
                and args[0].elem != args[1].elem:
            raise self.error(tree, f"found no matching overload for '{name}' applied to "
                                   f"'(list({args[0].elem}), list({args[1].elem}))'")

    def _validate_literal(self, tree: lark.Tree, name: str, fn: Callable[..., Any], value: Any) -> None:
        """cel-go's literal validators: a constant that can never parse is a compile error."""
        try:
            fn(value)
        except CelError:
            raise self.error(tree, f"invalid {name} argument") from None

    def _time_since(self, tree: lark.Tree, args: list[Node]) -> Node:
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

    def _has(self, tree: lark.Tree, arg_trees: list) -> Node:
        if len(arg_trees) != 1:
            raise self.error(tree, "invalid argument to has() macro")
        inner = _unwrap(arg_trees[0])
        if not isinstance(inner, lark.Tree) or inner.data != "member_dot":
            raise self.error(tree, "invalid argument to has() macro")
        target_tree, name_token = inner.children
        name = name_token.value
        target = self.compile(target_tree)
        if target.type == "variables" or target.type == "constants":
            raise self.error(tree, "has() is not supported on variables or constants")
        tf = target.fn
        return Node(lambda a: _has_field(tf(a), name), "bool")

    def _bind(self, tree: lark.Tree, arg_trees: list) -> Node:
        if len(arg_trees) != 3 or _ident_name(arg_trees[0]) is None:
            raise self.error(tree, "cel.bind() takes a variable name, a value and an expression")
        var = _ident_name(arg_trees[0])
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

    def _opt_map(self, tree: lark.Tree, target_tree: Any, name: str, arg_trees: list) -> Node:
        target = self.compile(target_tree)
        var = _ident_name(arg_trees[0])
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

    def _macro(self, tree: lark.Tree, target_tree: Any, name: str, arg_trees: list) -> Node:
        target = self.compile(target_tree)
        names = [_ident_name(t) for t in arg_trees]
        two_var = name in _MACROS_2 and len(arg_trees) >= 3 and names[1] is not None and name not in (
            "map", "filter", "sortBy"
        ) or name.startswith("transform")
        n_vars = 2 if two_var else 1
        if any(n is None for n in names[:n_vars]):
            raise self.error(tree, f"{name}() macro needs variable names first")
        variables = names[:n_vars]
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
        result = {"map": "list", "filter": "list", "transformList": "list", "transformMap": "map",
                  "transformMapEntry": "map", "sortBy": "list"}.get(name, "bool")
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

    def _expect_bool(self, tree: lark.Tree, node: Node, op: str) -> None:
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


_UNSET = object()


def _restore(locals_: dict, var: str, saved: Any) -> None:
    if saved is _UNSET:
        locals_.pop(var, None)
    else:
        locals_[var] = saved


def _unwrap(tree: Any) -> Any:
    """The innermost node of a chain of single-child wrappers (expr -> ... -> member)."""
    while isinstance(tree, lark.Tree) and len(tree.children) == 1 and tree.data in (
        "expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary",
        "member", "primary",
    ):
        tree = tree.children[0]
    return tree


def _ident_name(tree: Any) -> str | None:
    inner = _unwrap(tree)
    if isinstance(inner, lark.Tree) and inner.data == "ident":
        return inner.children[0].value
    return None


def _namespace_of(tree: Any) -> str | None:
    """``math`` for the target of ``math.greatest(...)``."""
    return _ident_name(tree)


def _parse_int(text: str) -> int:
    neg = text.startswith("-")
    body = text[1:] if neg else text
    value = int(body, 16) if body[:2] in ("0x", "0X") else int(body, 10)
    return -value if neg else value


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?"}


def _unquote(text: str) -> tuple[str, bool]:
    raw = text[:1] in "rR"
    if raw:
        text = text[1:]
    quote = text[:3] if text[:3] in ('"""', "'''") else text[0]
    return text[len(quote) : -len(quote)], raw


def _parse_string(text: str) -> str:
    body, raw = _unquote(text)
    return body if raw else _decode_escapes(body, as_bytes=False)


def _parse_bytes(text: str) -> bytes:
    body, raw = _unquote(text)
    if raw:
        return body.encode()
    decoded = _decode_escapes(body, as_bytes=True)
    return decoded.encode("latin-1") if isinstance(decoded, str) else decoded


def _decode_escapes(body: str, as_bytes: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c if not as_bytes else c.encode().decode("latin-1"))
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "xX":
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif nxt == "u":
            out.append(chr(int(body[i + 2 : i + 6], 16)))
            i += 6
        elif nxt == "U":
            out.append(chr(int(body[i + 2 : i + 10], 16)))
            i += 10
        elif nxt in "01234567":
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            raise ValueError(f"invalid escape \\{nxt}")
    return "".join(out)


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
    if t is Message:
        try:
            return value.fields[name]
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
        return Optional(value.fields[name], True) if _has_field(value, name) else OPTIONAL_NONE
    raise CelError(f"type '{type_name(value)}' does not support field selection")


def _has_field(value: Any, name: str) -> bool:
    t = type(value)
    if t is dict:
        return name in value
    if t is Message:
        if name not in value.fields:
            raise CelError(f"no such field '{name}'")
        v = value.fields[name]
        return v not in (None, "", 0, False) and v != [] and v != {}
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


# ---- comprehension macros --------------------------------------------------------------


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
                v = pred(a)
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
def _map(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> list:
    expr = bodies[-1]
    return [expr(a) for _ in _filtered(a, "map", target, variables, bodies)]


@_looping
def _filter(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> list:
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
def _transform_list(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> list:
    expr = bodies[-1]
    return [expr(a) for _ in _filtered(a, "transformList", target, variables, bodies)]


@_looping
def _transform_map(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> dict:
    expr = bodies[-1]
    return {item[0]: expr(a) for item in _filtered(a, "transformMap", target, variables, bodies)}


@_looping
def _transform_map_entry(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> dict:
    expr = bodies[-1]
    out: dict = {}
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
def _sort_by(a: Activation, target: Any, variables: list[str], bodies: list[Fn]) -> list:
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
    ("transformList", 2, 1): _transform_list,
    ("transformList", 2, 2): _transform_list,
    ("transformMap", 2, 1): _transform_map,
    ("transformMap", 2, 2): _transform_map,
    ("transformMapEntry", 2, 1): _transform_map_entry,
    ("transformMapEntry", 2, 2): _transform_map_entry,
    ("sortBy", 1, 1): _sort_by,
}


# ---- static types ------------------------------------------------------------------------

_RESULT_TYPES = {
    "size": "int", "int": "int", "uint": "uint", "double": "double", "string": "string", "bytes": "bytes",
    "bool": "bool", "timestamp": "timestamp", "duration": "duration", "type": "type", "matches": "bool",
    "startsWith": "bool", "endsWith": "bool", "contains": "bool", "lowerAscii": "string",
    "upperAscii": "string", "trim": "string", "replace": "string", "substring": "string", "charAt": "string",
    "indexOf": "int", "lastIndexOf": "int", "split": "list", "join": "string", "format": "string",
    "hasIntersection": "bool", "has_intersection": "bool", "isSubset": "bool", "is_subset": "bool",
    "intersect": "list", "except": "list", "inIPAddrRange": "bool", "hierarchy": "hierarchy",
    "ancestorOf": "bool", "descendentOf": "bool", "immediateChildOf": "bool", "immediateParentOf": "bool",
    "overlaps": "bool", "siblingOf": "bool", "sets.contains": "bool", "sets.equivalent": "bool",
    "sets.intersects": "bool", "getFullYear": "int", "getMonth": "int", "getDate": "int",
    "getDayOfMonth": "int", "getDayOfYear": "int", "getDayOfWeek": "int", "getHours": "int",
    "getMinutes": "int", "getSeconds": "int", "getMilliseconds": "int", "pathMatch": "bool",
    "pathMatchAnyOf": "bool", "pathHasPrefix": "bool", "isIP": "bool", "isCIDR": "bool",
}

_LITERAL_VALIDATED = {"duration", "timestamp"}
_SET_FUNCTIONS = {"hasIntersection", "has_intersection", "intersect", "except", "isSubset", "is_subset",
                  "sets.contains", "sets.equivalent", "sets.intersects"}

# Argument types each conversion accepts (besides dyn), for compile-time overload errors.
_CONVERSIONS = {
    "int": ("int", "uint", "double", "string", "timestamp"),
    "uint": ("int", "uint", "double", "string"),
    "double": ("int", "uint", "double", "string"),
    "string": ("int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration"),
    "bytes": ("bytes", "string"),
    "bool": ("bool", "string"),
    "timestamp": ("timestamp", "string", "int"),
    "duration": ("duration", "string"),
}

_ARITH = {
    "+": {("int", "int"): "int", ("uint", "uint"): "uint", ("double", "double"): "double",
          ("string", "string"): "string", ("bytes", "bytes"): "bytes", ("list", "list"): "list",
          ("timestamp", "duration"): "timestamp", ("duration", "timestamp"): "timestamp",
          ("duration", "duration"): "duration"},
    "-": {("int", "int"): "int", ("uint", "uint"): "uint", ("double", "double"): "double",
          ("timestamp", "duration"): "timestamp", ("timestamp", "timestamp"): "duration",
          ("duration", "duration"): "duration"},
    "*": {("int", "int"): "int", ("uint", "uint"): "uint", ("double", "double"): "double"},
    "/": {("int", "int"): "int", ("uint", "uint"): "uint", ("double", "double"): "double"},
    "%": {("int", "int"): "int", ("uint", "uint"): "uint"},
}
_ORDERED = {"int", "uint", "double", "string", "bytes", "bool", "timestamp", "duration"}
_KNOWN = _ORDERED | {"null_type", "list", "map", "type"}


def _check_binary(op: str, left: str, right: str) -> str | None:
    """The static result type of ``left op right``, or None when cel-go's checker would reject it."""
    if op in _ARITH:
        if left in _KNOWN and right in _KNOWN:
            return _ARITH[op].get((left, right))
        lefts = {lt for lt, _ in _ARITH[op]}
        rights = {rt for _, rt in _ARITH[op]}
        if left in _KNOWN and left not in lefts or right in _KNOWN and right not in rights:
            return None
        return "dyn"
    if op in ("<", "<=", ">", ">="):
        if left not in _KNOWN or right not in _KNOWN:
            return "bool"
        if left in _NUMERIC and right in _NUMERIC or left == right and left in _ORDERED:
            return "bool"
        return None
    if op in ("==", "!="):
        if left not in _KNOWN or right not in _KNOWN or left == right:
            return "bool"
        if "null_type" in (left, right) and {left, right} & {"list", "map", "null_type", "type"}:
            return "bool"
        return None
    if op == "in":
        if right in _PRIMITIVES or right in ("timestamp", "duration"):
            return None
        return "bool"
    return "dyn"


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
    compiler = Compiler(scope or Scope())
    node = compiler.compile(tree)
    return CompiledExpression(text, node.fn, node.type, node.const)
