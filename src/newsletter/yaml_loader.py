"""newsletter.yml's YAML, parsed once, with the line of every key and nothing a hand never writes.

A config is a small file written by hand, so what only an accident or an attack produces is
refused with the line to fix rather than honoured:

- a file over ``config_size.MAX_CONFIG_BYTES``, before any parsing;
- a key written twice in one mapping, at any depth (YAML keeps the last one silently, so a
  setting could be changed by a line far below the one a reader looks at);
- aliases that copy more than ``ALIAS_NODE_BUDGET`` values in all: anchors that reuse a few
  settings are fine, but a "billion laughs" file (aliases of aliases, each multiplying the
  last) is stopped at the alias that crosses the budget, before anything is copied;
- an alias inside the value it refers to (a structure that contains itself), and nesting
  deeper than ``MAX_DEPTH``.

Values are built straight from the parser's events (libyaml's when PyYAML has it): no node
tree is composed, so a 1 MB file is read in one pass, and each key's line is noted on the way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from .config_size import check_size
from .errors import ConfigError

if TYPE_CHECKING:
    import yaml._yaml

    Mark: TypeAlias = yaml.Mark | yaml._yaml.Mark
    """Where an event is: libyaml's events carry a mark type of their own, with the same fields."""


class PythonEvents(Reader, Scanner, Parser):
    """PyYAML's own event source, for a PyYAML built without libyaml: slower, same events."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)


try:
    from yaml._yaml import CParser as _Events
except ImportError:
    _Events = PythonEvents  # type: ignore[misc,assignment]


ALIAS_NODE_BUDGET = 10_000
"""Values all aliases of a file may copy together: hundreds of reused settings blocks."""

MAX_DEPTH = 50
"""Levels of nesting; newsletter.yml needs five."""

STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"
PLAIN_COLLECTION_TAGS = (None, "!", "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")

KeyPath = tuple[Any, ...]


@dataclass
class ParsedYaml:
    """The document's values and, for every key and list item, the line it starts on."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int:
        """The line of a path, or of its nearest ancestor written in the file (aliased values
        and defaults have no line of their own)."""
        while path and path not in self.lines:
            path = path[:-1]
        return self.lines.get(path, 1)


class _Refused(yaml.YAMLError):
    """A well-formed file this loader will not build; its message is the user's to read."""

    def __init__(self, problem: str, mark: Mark | None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


def dotted(path: KeyPath) -> str:
    """A path as the README writes it: ``sources[0].guest.tags``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


StringHook = Callable[[KeyPath, int, str], str]
"""Called with (path, line, text) for each string value where it is written; returns the value."""


def read_yaml(text: str, shown: str, *, on_string: StringHook | None = None) -> ParsedYaml:
    """Parse one YAML document into plain values, with lines, or raise one ConfigError.

    ``on_string`` sees every string value holding a '$' (the only ones a hook needs), once
    where it is written and again wherever an alias copies it, with that place's path.
    """
    check_size(len(text.encode("utf-8")), shown)
    events = _Events(text)
    builder = _Builder(events, on_string)
    try:
        data = builder.document()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark is not None else shown
        problem = getattr(exc, "problem", None) or str(exc)
        if isinstance(exc, _Refused):
            raise ConfigError([f"{where}: {problem}"], path=shown) from None
        if mark is not None and _char_at(text, mark.index) == "\t":
            problem = "found a tab character; YAML indents with spaces only"
        raise ConfigError(
            [f"{where}: YAML syntax error: {problem}; check indentation and quoting"], path=shown
        ) from None
    finally:
        events.dispose()
    if builder.repeated_keys:
        raise ConfigError(
            [f"{shown}:{problem}" for _, problem in sorted(builder.repeated_keys)], path=shown
        )
    return ParsedYaml(data, builder.lines)


class _Builder:
    """Builds values from parser events, noting each key's line and every key written twice.

    Hot on a big file: each event is fetched once and dispatched on its exact type.
    """

    def __init__(self, events: Any, on_string: StringHook | None) -> None:
        self.next_event: Callable[[], Event] = events.get_event
        self.on_string = on_string
        self.lines: dict[KeyPath, int] = {}
        self.repeated_keys: list[tuple[int, str]] = []
        self.anchors: dict[str, tuple[Any, int] | None] = {}  # None: still being built
        self.built = 0  # values built, counting what aliases copy
        self.copied = 0
        self.resolver = Resolver()
        self.constructor = SafeConstructor()
        self.plain_tags: dict[str, str] = {}  # keys repeat: resolve each spelling once

    def document(self) -> Any:
        self.next_event()  # stream start
        event = self.next_event()
        if type(event) is StreamEndEvent:
            return None
        data = self.value(self.next_event(), ())  # after the document start
        self.next_event()  # document end
        event = self.next_event()
        if type(event) is DocumentStartEvent:
            raise _Refused(
                "a second document ('---') follows the first; newsletter.yml holds one, so "
                "remove the line '---' and merge what follows into the settings above",
                event.start_mark,
            )
        return data

    def value(self, event: Event, path: KeyPath) -> Any:
        kind = type(event)
        anchor = event.anchor  # type: ignore[attr-defined]
        if kind is ScalarEvent:
            written = self.scalar(event)[1]  # type: ignore[arg-type]
            self.built += 1
            if anchor is not None:  # an alias gets the text as written, not as rewritten here
                self.anchors[anchor] = (written, 1)
            return self.rewritten(written, path, event)
        if kind is AliasEvent:
            return self.alias(event, path)  # type: ignore[arg-type]
        if anchor is not None:
            self.anchors[anchor] = None
        before = self.built
        if len(path) >= MAX_DEPTH:
            raise _Refused(
                f"nested more than {MAX_DEPTH} levels deep; check the indentation",
                event.start_mark,
            )
        value: dict[Any, Any] | list[Any]
        if kind is MappingStartEvent:
            self.refuse_tag(event)  # type: ignore[arg-type]
            value = self.mapping(path)
        elif kind is SequenceStartEvent:
            self.refuse_tag(event)  # type: ignore[arg-type]
            value = self.sequence(path)
        else:  # the parser yields nothing else where a value is due
            raise _Refused(f"unexpected {event}", event.start_mark)
        self.built += 1
        if anchor is not None:
            self.anchors[anchor] = (value, self.built - before)
        return value

    def alias(self, event: AliasEvent, path: KeyPath) -> Any:
        name = event.anchor
        if name not in self.anchors:
            raise _Refused(
                f"the alias '*{name}' refers to no anchor '&{name}' above it; "
                "define the anchor first or correct the name",
                event.start_mark,
            )
        entry = self.anchors[name]
        if entry is None:
            raise _Refused(
                f"the alias '*{name}' is inside the value it refers to, which would never end; "
                "write that value out instead",
                event.start_mark,
            )
        value, size = entry
        self.built += size
        self.copied += size
        if self.copied > ALIAS_NODE_BUDGET:
            raise _Refused(
                f"the alias '*{name}' would make aliases copy more than "
                f"{ALIAS_NODE_BUDGET:,} values in all (a file built to grow without end); "
                "write the repeated settings out, or reuse fewer of them through aliases",
                event.start_mark,
            )
        return self.rewritten(value, path, event)

    def scalar(self, event: ScalarEvent) -> tuple[str, Any]:
        """A scalar's tag and value; each plain spelling is resolved once (keys repeat)."""
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:  # quoted: always a string
                return STR_TAG, event.value
            if event.value[:1] not in self.resolver.yaml_implicit_resolvers:
                return STR_TAG, event.value  # no number, bool or null starts this way
            tag = self.plain_tags.get(event.value)
            if tag is None:
                tag = self.resolver.resolve(ScalarNode, event.value, event.implicit)
                self.plain_tags[event.value] = tag
        if tag in (STR_TAG, MERGE_TAG):
            return tag, event.value
        # the constructor reads a mark's fields only, which both kinds of mark have
        start, end = cast("yaml.Mark", event.start_mark), cast("yaml.Mark", event.end_mark)
        node = ScalarNode(tag, event.value, start, end, event.style)
        return tag, self.constructor.construct_object(node)

    def rewritten(self, value: Any, path: KeyPath, event: Event) -> Any:
        """A string value as the hook makes it at this place; anything else as it is."""
        if type(value) is str and "$" in value and self.on_string is not None:
            return self.on_string(path, _line(event), value)
        return value

    def refuse_tag(self, event: MappingStartEvent | SequenceStartEvent) -> None:
        if event.tag not in PLAIN_COLLECTION_TAGS:
            raise _Refused(
                f"the tag {event.tag} has no meaning in newsletter.yml; remove it",
                event.start_mark,
            )

    def mapping(self, path: KeyPath) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: list[Any] = []
        while True:
            event = self.next_event()
            kind = type(event)
            if kind is MappingEndEvent:
                break
            if kind is not ScalarEvent:
                raise _Refused(
                    "a key must be a plain word, not a list, a mapping or an alias",
                    event.start_mark,
                )
            line = _line(event)
            tag, key = self.scalar(event)  # type: ignore[arg-type]
            if tag == MERGE_TAG:  # '<<: *defaults': keys written beside it override
                merged.append((self.value(self.next_event(), (*path, "<<")), event.start_mark))
                continue
            key_path = (*path, key)
            if key in result:
                self.repeated_keys.append(
                    (
                        line,
                        f"{line}: key '{dotted(key_path)}' appears again "
                        f"(first at line {self.lines[key_path]}); keep one",
                    )
                )
            else:
                self.lines[key_path] = line
            result[key] = self.value(self.next_event(), key_path)
        return _merge(merged, result) if merged else result

    def sequence(self, path: KeyPath) -> list[Any]:
        items: list[Any] = []
        while True:
            event = self.next_event()
            if type(event) is SequenceEndEvent:
                return items
            item_path = (*path, len(items))
            self.lines[item_path] = _line(event)
            items.append(self.value(event, item_path))


def _line(event: Event) -> int:
    """The line an event starts on, counted from 1; the parser marks every event."""
    return event.start_mark.line + 1 if event.start_mark is not None else 1


def _merge(merged: list[tuple[Any, Mark | None]], own: dict[Any, Any]) -> dict[Any, Any]:
    """YAML's merge keys: the first mapping named wins over later ones, own keys over all."""
    result: dict[Any, Any] = {}
    for value, mark in merged:
        sources = value if isinstance(value, list) else [value]
        for source in reversed(sources):
            if not isinstance(source, dict):
                raise _Refused("'<<' merges mappings only, such as '<<: *defaults'", mark)
            result.update(source)
    result.update(own)
    return result


def _char_at(text: str, index: int) -> str:
    return text[index] if 0 <= index < len(text) else ""
