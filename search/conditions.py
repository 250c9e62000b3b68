"""``when:`` conditions of a search space: a tiny, safe subset of Python expressions.

Allowed: factor names, literals (strings, numbers, booleans, None, lists/tuples),
comparisons (``== != < <= > >= in not in``), ``and``, ``or``, ``not`` and parentheses.
Example: ``attention != 'none' and backbone in ['resnet18', 'resnet50']``.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from typing import Any

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class ConditionError(ValueError):
    """The expression is not in the allowed subset."""


@dataclass(frozen=True)
class Condition:
    """A parsed ``when:`` expression."""

    source: str
    tree: ast.Expression = field(compare=False, repr=False)  # equal sources give equal trees
    names: frozenset[str]

    def __call__(self, values: dict[str, Any]) -> bool:
        return bool(_eval(self.tree.body, values))


def parse_condition(source: str) -> Condition:
    """Parse and check ``source``; raises ConditionError with a short reason."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"not a valid expression ({exc.msg})") from None
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif not isinstance(
            node,
            (
                ast.Expression,
                ast.Compare,
                ast.BoolOp,
                ast.UnaryOp,
                ast.Constant,
                ast.List,
                ast.Tuple,
                ast.Load,
                ast.And,
                ast.Or,
                ast.Not,
                *tuple(_COMPARE),
            ),
        ):
            raise ConditionError(
                f"'{type(node).__name__}' is not allowed; use factor names, literals, "
                "comparisons, in / not in, and / or / not"
            )
    return Condition(source=source, tree=tree, names=frozenset(names))


def _eval(node: ast.AST, values: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return values.get(node.id)
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval(e, values) for e in node.elts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _eval(node.operand, values)
    if isinstance(node, ast.BoolOp):
        results = (_eval(v, values) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    raise ConditionError(f"cannot evaluate {type(node).__name__}")
