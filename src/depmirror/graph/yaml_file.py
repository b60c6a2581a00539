"""The graph file's YAML: safe types only, duplicate keys refused, aliases bounded.

Merge keys (`<<: *defaults`) and aliases of small values (a shared command) keep working; a document whose
aliases would expand it far beyond what is written (a "billion laughs": 796 bytes took 44 s and 3.1 GB in the
schema check) is refused before anything walks it.
"""

from __future__ import annotations

from typing import Any

import yaml

from depmirror.errors import ConfigError

# Aliases share one node; what reads the data walks every use of it. A merge key (`<<: *defaults`) per
# dependency adds a few nodes each, a "billion laughs" adds 9^9: bound the document as every reader sees it.
EXPANSION_FLOOR = 100_000

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that refuses duplicate keys: PyYAML would silently keep the last one."""


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """SafeConstructor.construct_mapping in one pass over the keys, refusing duplicate keys.

    Merged entries (`<<: *anchor`) come first and may be overridden: only the mapping's own keys count.
    """
    own = sum(1 for key_node, _ in node.value if key_node.tag != _MERGE_TAG)
    loader.flatten_mapping(node)
    first_own = len(node.value) - own
    mapping: dict[Any, Any] = {}
    lines: dict[Any, int] = {}
    for index, (key_node, value_node) in enumerate(node.value):
        key = loader.construct_object(key_node, deep=deep)
        value = loader.construct_object(value_node, deep=deep)
        try:
            if index >= first_own:
                if key in lines:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1, lines[key])
                lines[key] = key_node.start_mark.line + 1
            mapping[key] = value
        except TypeError:  # an unhashable key, such as a mapping used as a key
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found unhashable key", key_node.start_mark
            ) from None
    return mapping


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    """SafeConstructor's int, with Python's limit on digits (4300) as a YAML error at the number, not a crash."""
    try:
        value: int = loader.construct_yaml_int(node)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"the number has too many digits ({len(node.value):,})", node.start_mark
        ) from None
    return value


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, first_line: int) -> None:
        super().__init__(key)
        self.key = key
        self.line = line
        self.first_line = first_line


def load_yaml(text: str | bytes, source: str) -> Any:
    """The document in `text` as plain Python values; ConfigError (naming `source`) on anything wrong."""
    loader = _UniqueKeyLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        # Without a `*` there is no alias, so no shared node to count again (and no walk on a 10k fleet).
        has_alias = b"*" in text if isinstance(text, bytes) else "*" in text
        if has_alias:
            _check_expansion(node, source, len(text))
        return loader.construct_document(node)
    except _DuplicateKey as dup:
        raise ConfigError(
            source,
            f"line {dup.line}",
            f"duplicate name {dup.key!r} (first defined at line {dup.first_line})",
            "every name may appear once; rename or merge the two entries",
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(source, where, f"not valid YAML: {problem}", "fix the YAML syntax") from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, source: str, written: int) -> None:
    """Refuse a document whose aliases expand it past `written` bytes' worth of nodes plus a floor.

    A node takes at least one byte of text (`[a,a]`), so a file without aliases stays well inside the limit;
    a merged defaults mapping per dependency does too. The walk counts every node as a reader would meet it
    (an alias's node once per use) and stops at the limit, so a bomb costs no more than the limit; only then
    is the exact expansion measured, for the message.
    """
    limit = written + EXPANSION_FLOOR
    seen = 0
    stack = [root]
    while stack:
        node = stack.pop()
        seen += 1
        if seen > limit:
            _refuse_expansion(root, source, limit)
        value = node.value
        if isinstance(value, list):
            for item in value:
                if isinstance(item, tuple):  # a mapping's (key, value)
                    stack.extend(item)
                else:
                    stack.append(item)


def _refuse_expansion(root: yaml.Node, source: str, limit: int) -> None:
    """Size the document (each distinct node once, its size 1 + its children's) and refuse it."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        children = _children(node)
        if finished:
            open_nodes.discard(key)
            size[key] = 1 + sum(size[id(child)] for child in children)
            continue
        if key in size:
            continue
        if key in open_nodes:
            mark = node.start_mark
            raise ConfigError(
                source,
                f"line {mark.line + 1}, column {mark.column + 1}",
                "an alias refers to the node that contains it (a recursive structure)",
                "write the value out instead of the alias",
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children)
    raise ConfigError(
        source,
        "",
        f"aliases expand the document to {size[id(root)]:,} nodes from {len(size):,} written "
        f"(the limit is {limit:,}: one per byte of the file plus {EXPANSION_FLOOR:,})",
        "write the values out, or alias only small ones (a command, a defaults mapping merged with <<)",
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
