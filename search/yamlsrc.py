"""Load YAML while remembering the line of every key, so errors can name file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from leukmodels.errors import UserError


@dataclass
class YamlSource:
    """A parsed YAML document with a map from dotted key path to its 1-based line."""

    path: Path
    text: str
    data: Any
    lines: dict[tuple, int] = field(default_factory=dict)

    def line_of(self, loc: tuple) -> int | None:
        """Line of the deepest known prefix of ``loc`` (a tuple of keys and indices)."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return None

    def where(self, loc: tuple) -> str:
        """'file:line' (or just the file) for messages."""
        line = self.line_of(loc)
        return f"{self.path}:{line}" if line else str(self.path)


def _walk(node: yaml.Node, prefix: tuple, out: dict[tuple, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[prefix + (key,)] = key_node.start_mark.line + 1
            _walk(value_node, prefix + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[prefix + (i,)] = item.start_mark.line + 1
            _walk(item, prefix + (i,), out)


def load_yaml(path: str | Path, text: str | None = None) -> YamlSource:
    """Read and parse ``path`` (or ``text``, named ``path`` in messages).

    A missing file or a syntax error is a UserError.
    """
    p = Path(path)
    if text is None:
        if not p.is_file():
            hint = " (it is a folder)" if p.is_dir() else ""
            raise UserError(f"search space file not found: {p}{hint}")
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read search space file {p}: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        raise UserError(f"{p}{line}: YAML syntax error: {problem}{context}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{p}: YAML error: {exc}") from None
    lines: dict[tuple, int] = {}
    if node is not None:
        _walk(node, (), lines)
    return YamlSource(path=p, text=text, data=data, lines=lines)
