"""Random, well-typed CEL expressions over the core language, for comparing our compiled
closures with cel-python's interpreter (the reference) on many inputs."""

from __future__ import annotations

import random

VARIABLES = {"x": "int", "y": "int", "d": "double", "s": "string", "t": "string", "b": "bool", "l": "list", "m": "map"}


class ExpressionGenerator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def expression(self, depth: int = 4) -> str:
        return self.gen("bool", depth)

    def gen(self, kind: str, depth: int) -> str:
        if depth <= 0 or self.rng.random() < 0.25:
            return self.leaf(kind)
        return self.rng.choice(getattr(self, f"_{kind}"))(self, depth - 1)

    def leaf(self, kind: str) -> str:
        names = [n for n, k in VARIABLES.items() if k == kind]
        if names and self.rng.random() < 0.6:
            return self.rng.choice(names)
        r = self.rng
        return {
            "int": lambda: str(r.choice([0, 1, 2, 3, 7, -1, -5, 100, 9223372036854775807])),
            "double": lambda: r.choice(["0.0", "1.5", "-2.25", "3.0", "1e10"]),
            "string": lambda: r.choice(['""', '"a"', '"abc"', '"Hello"', '"x y"']),
            "bool": lambda: r.choice(["true", "false"]),
            "list": lambda: r.choice(["[]", "[1, 2, 3]", "[0, -1]", "[5]"]),
            "map": lambda: r.choice(["{}", '{"a": 1}', '{"a": 1, "b": 2}']),
        }[kind]()

    def _arith(self, depth: int, kind: str, ops: str) -> str:
        return f"({self.gen(kind, depth)} {self.rng.choice(ops.split())} {self.gen(kind, depth)})"

    _int = [
        lambda g, d: g._arith(d, "int", "+ - * / %"),
        lambda g, d: f"-({g.gen('int', d)})",
        lambda g, d: f"size({g.gen(g.rng.choice(['string', 'list', 'map']), d)})",
        lambda g, d: f"({g.gen('bool', d)} ? {g.gen('int', d)} : {g.gen('int', d)})",
        lambda g, d: f"{g.gen('list', d)}[{g.gen('int', d)}]",
        lambda g, d: f"int({g.gen('double', d)})",
    ]
    _double = [
        lambda g, d: g._arith(d, "double", "+ - * /"),
        lambda g, d: f"double({g.gen('int', d)})",
        lambda g, d: f"({g.gen('bool', d)} ? {g.gen('double', d)} : {g.gen('double', d)})",
    ]
    _string = [
        lambda g, d: g._arith(d, "string", "+"),
        lambda g, d: f"string({g.gen('int', d)})",
        lambda g, d: f"({g.gen('bool', d)} ? {g.gen('string', d)} : {g.gen('string', d)})",
    ]
    _list = [
        lambda g, d: g._arith(d, "list", "+"),
        lambda g, d: f"{g.gen('list', d)}.map(v, v {g.rng.choice(['+', '*', '-'])} {g.gen('int', d)})",
        lambda g, d: f"{g.gen('list', d)}.filter(v, v {g.rng.choice(['<', '>', '=='])} {g.gen('int', d)})",
        lambda g, d: f"[{g.gen('int', d)}, {g.gen('int', d)}]",
    ]
    _map = [
        lambda g, d: f'{{"k": {g.gen("int", d)}, "j": {g.gen("int", d)}}}',
    ]
    _bool = [
        lambda g, d: f"({g.gen('bool', d)} && {g.gen('bool', d)})",
        lambda g, d: f"({g.gen('bool', d)} || {g.gen('bool', d)})",
        lambda g, d: f"!{g.gen('bool', d)}",
        lambda g, d: g._compare(d),
        lambda g, d: f"({g.gen('int', d)} in {g.gen('list', d)})",
        lambda g, d: f"({g.gen('string', d)} in {g.gen('map', d)})",
        lambda g, d: f"{g.gen('list', d)}.all(v, v {g.rng.choice(['<', '>', '!='])} {g.gen('int', d)})",
        lambda g, d: f"{g.gen('list', d)}.exists(v, v {g.rng.choice(['<', '>', '=='])} {g.gen('int', d)})",
        lambda g, d: f"{g.gen('list', d)}.exists_one(v, v == {g.gen('int', d)})",
        lambda g, d: (
            f"{g.gen('string', d)}.{g.rng.choice(['startsWith', 'endsWith', 'contains'])}({g.gen('string', d)})"
        ),
        lambda g, d: f"has(m.{g.rng.choice(['a', 'b', 'z'])})",
        lambda g, d: f"({g.gen('bool', d)} ? {g.gen('bool', d)} : {g.gen('bool', d)})",
    ]

    def _compare(self, depth: int) -> str:
        kind = self.rng.choice(["int", "double", "string", "bool"])
        ops = "== !=" if kind == "bool" else "< <= > >= == !="
        return f"({self.gen(kind, depth)} {self.rng.choice(ops.split())} {self.gen(kind, depth)})"


def inputs(seed: int) -> dict:
    r = random.Random(seed)
    return {
        "x": r.choice([0, 1, 2, -3, 10, 9223372036854775807]),
        "y": r.choice([0, 1, -1, 4]),
        "d": r.choice([0.0, 0.5, -1.5, 2.0]),
        "s": r.choice(["", "a", "Hello", "abc"]),
        "t": r.choice(["a", "lo", "H"]),
        "b": r.choice([True, False]),
        "l": r.choice([[], [1, 2, 3], [0], [-1, 5]]),
        "m": r.choice([{}, {"a": 1}, {"a": 2, "b": 3}]),
    }
