"""Load YAML while remembering the line of every key, so errors can name file and line.

The loader is PyYAML's SafeLoader made strict for files a user (or anyone) hands us:

- at most :data:`MAX_BYTES` of text, :data:`MAX_ALIASES` aliases (``*name``),
  :data:`MAX_NODES` values once aliases are expanded (a "billion laughs" file is
  refused while it is composed, before anything is built from it) and
  :data:`MAX_DEPTH` levels of nesting;
- a key given twice in one mapping is an error naming both lines (YAML would keep
  the last one silently); every key is a string;
- only the plain YAML types: null, booleans, numbers, strings, lists and mappings
  (no ``!!python/...``, ``!!binary``, ``!!set`` or custom tags; dates stay strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor

from leukmodels.errors import UserError

MAX_BYTES = 1 << 20
"""Largest space file (1 MiB; the largest shipped space is a few KiB)."""
MAX_ALIASES = 100
"""Most aliases (``*name``) in one document."""
MAX_NODES = 100_000
"""Most values (scalars, lists and mappings) in a document once its aliases are expanded."""
MAX_DEPTH = 50
"""Deepest nesting of lists and mappings."""

_TAG = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(
    _TAG + t for t in ("null", "bool", "int", "float", "str", "seq", "map", "merge")
)


class _Refused(Exception):
    """The document breaks one of the loader's rules (at a 1-based ``line``)."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.message = message


def _line(node_or_mark: Any) -> int:
    mark = getattr(node_or_mark, "start_mark", node_or_mark)
    return mark.line + 1 if mark is not None else 0


class StrictLoader(yaml.SafeLoader):
    """SafeLoader with bounds on aliases, expansion and depth, strict tags and unique keys."""

    # YAML 1.1 turns 2024-01-01 into a date; a space has no dates, so it stays a string
    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _TAG + "timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str):
        super().__init__(stream)
        self._sizes: dict[int, int] = {}  # id(node) -> values it stands for, aliases expanded
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            return self._alias(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(
                _line(self.peek_event()),
                f"nesting deeper than {MAX_DEPTH} levels of lists and mappings",
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node.tag not in ALLOWED_TAGS:
            raise _Refused(
                _line(node),
                f"YAML tag {node.tag.replace(_TAG, '!!')!r} is not allowed; a space holds only "
                "null, booleans, numbers, strings, lists and mappings",
            )
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        size = 1 + sum(self._sizes[id(c)] for c in children)
        self._count(node, size)
        return node

    def _alias(self, parent: Any, index: Any) -> Any:
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise _Refused(
                _line(self.peek_event()),
                f"more than {MAX_ALIASES} aliases (*name); write the values out instead",
            )
        node = super().compose_node(parent, index)
        if id(node) not in self._sizes:
            raise _Refused(
                _line(node), "an alias refers to a value that contains it (a recursive alias)"
            )
        return node

    def _count(self, node: Any, size: int) -> None:
        if size > MAX_NODES:
            why = "once its aliases are expanded" if self._aliases else ""
            raise _Refused(
                _line(node),
                f"the document holds more than {MAX_NODES:,} values {why}".rstrip()
                + " (an alias bomb?)" * bool(self._aliases),
            )
        self._sizes[id(node)] = size

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """Keys must be strings, each given once per mapping (both lines named if not)."""
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == _TAG + "merge":
                    continue
                key = self._key(key_node)
                if key in seen:
                    raise _Refused(
                        _line(key_node),
                        f"key '{key}' is given twice in the same mapping, "
                        f"{_positions(seen[key], key_node.start_mark)}; keep one",
                    )
                seen[key] = key_node.start_mark
        return SafeConstructor.construct_mapping(self, node, deep=deep)

    def _key(self, key_node: Any) -> str:
        if not isinstance(key_node, yaml.ScalarNode):
            raise _Refused(_line(key_node), "a key is a list or mapping; keys are names")
        key = self.construct_object(key_node)
        if not isinstance(key, str):
            raise _Refused(
                _line(key_node),
                f"key {key_node.value!r} is not a string ({type(key).__name__}); keys are names "
                "(quote words YAML reads as booleans, numbers or null: 'on', 'no', '1')",
            )
        return key


def _positions(first: Any, second: Any) -> str:
    """'at line 3 and line 4', or 'on line 4 (columns 9 and 20)'."""
    if first.line == second.line:
        return f"on line {first.line + 1} (columns {first.column + 1} and {second.column + 1})"
    return f"at line {first.line + 1} and line {second.line + 1}"


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


def read_text(p: Path) -> str:
    """The text of space file ``p``: a regular UTF-8 file of at most MAX_BYTES."""
    if not p.exists():
        raise UserError(f"search space file not found: {p}")
    if p.is_dir():
        raise UserError(f"search space {p} is a folder; give the YAML file inside it")
    if not p.is_file():
        raise UserError(f"search space {p} is not a regular file")
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UserError(f"cannot read search space file {p}: {exc.strerror or exc}") from None
    _check_size(p, len(raw))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{p}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "a search space is a UTF-8 YAML file"
        ) from None


def _check_size(p: Path, n_bytes: int) -> None:
    if n_bytes > MAX_BYTES:
        raise UserError(
            f"{p}: larger than {MAX_BYTES // 1024} KiB ({MAX_BYTES:,} bytes), the most a search "
            "space file may hold; is it the right file?"
        )


def load_yaml(path: str | Path, text: str | None = None) -> YamlSource:
    """Read and parse ``path`` (or ``text``, named ``path`` in messages) with
    :class:`StrictLoader`. A missing, oversized, binary, empty or invalid file is a UserError
    naming the file and, where there is one, the line."""
    p = Path(path)
    if text is None:
        text = read_text(p)
    else:
        _check_size(p, len(text.encode("utf-8", "surrogatepass")))
    node, data = _parse(p, text)
    if node is None:
        raise UserError(f"{p}: the file is empty; a search space is a YAML mapping of sections")
    lines: dict[tuple, int] = {}
    _walk(node, (), lines)
    return YamlSource(path=p, text=text, data=data, lines=lines)


def _parse(p: Path, text: str) -> tuple[Any, Any]:
    """(root node, constructed data) of ``text``; every loader error becomes a UserError."""
    loader: StrictLoader | None = None
    try:
        loader = StrictLoader(text)  # the reader refuses control characters here
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise UserError(f"{p}:{exc.line}: {exc.message}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise UserError(
            f"{p}:{line}: not a YAML text file: character {_char(exc.character)} "
            f"at offset {exc.position} ({exc.reason})"
        ) from None
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise UserError(f"{p}:{_line(mark)}: {exc.problem or exc.context}") from None
    except yaml.MarkedYAMLError as exc:
        raise UserError(_syntax_message(p, exc)) from None
    except yaml.YAMLError as exc:
        raise UserError(f"{p}: YAML error: {exc}") from None
    finally:
        if loader is not None:
            loader.dispose()
    return node, data


def _char(character: Any) -> str:
    return f"#x{character:04x}" if isinstance(character, int) else repr(character)


def _syntax_message(p: Path, exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    line = f":{mark.line + 1}" if mark else ""
    problem = exc.problem or "invalid YAML"
    context = f" ({exc.context})" if exc.context else ""
    hint = "; indent with spaces, YAML does not allow tabs" if "'\\t'" in problem else ""
    return f"{p}{line}: YAML syntax error: {problem}{context}{hint}"
