"""The config schema (``config.Config``) told in words: a reference page and a commented
newsletter.yml, both generated from the pydantic models and their field docstrings, so
neither can fall behind a setting that is added, renamed or given a new default.

``python -m newsletter.config_docs`` prints the reference; ``scripts/config-reference``
writes it to docs/config-reference.md, and a test fails when that file is out of date.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import sys
import textwrap
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from . import config as config_module
from .config import Config, models_in

REFERENCE_TITLE = "# Configuration reference"


@dataclass(frozen=True)
class Setting:
    """One key of one model, with what the schema says of it."""

    name: str
    info: FieldInfo

    @property
    def models(self) -> tuple[type[BaseModel], ...]:
        """The models this key holds (one section, or the kinds a list's items may be)."""
        return models_in(self.info.annotation)

    @property
    def is_list(self) -> bool:
        return typing.get_origin(_without_none(self.info.annotation)) is list

    owner: type[BaseModel]

    @property
    def description(self) -> str:
        text = self.info.description or _docstring(self.owner, self.name)
        if not text and len(self.models) == 1:
            text = self.models[0].__doc__
        return " ".join((text or "").split())

    @property
    def default(self) -> Any:
        if self.info.is_required():
            raise ValueError(f"{self.name} has no default")
        return self.info.get_default(call_default_factory=True)


def settings_of(model: type[BaseModel]) -> list[Setting]:
    return [Setting(name, info, model) for name, info in model.model_fields.items()]


@functools.cache
def _attribute_docstrings() -> dict[str, dict[str, str]]:
    """The string under each field of each class of config.py, by class and field name.

    pydantic would read these itself (``use_attribute_docstrings``), but by parsing the
    source of every model each time config.py is imported, which cost every command a
    tenth of its start-up for words only this page and ``newsletter init`` show.
    """
    found: dict[str, dict[str, str]] = {}
    for node in ast.walk(ast.parse(inspect.getsource(config_module))):
        if not isinstance(node, ast.ClassDef):
            continue
        docs = found.setdefault(node.name, {})
        for field, after in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[field.target.id] = inspect.cleandoc(after.value.value)
    return found


def _docstring(model: type[BaseModel], name: str) -> str | None:
    """The field's docstring in the nearest class that has one (a subclass may add its own)."""
    for cls in model.__mro__:
        text = _attribute_docstrings().get(cls.__name__, {}).get(name)
        if text:
            return text
    return None


def _without_none(annotation: Any) -> Any:
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _kind_of(model: type[BaseModel]) -> str | None:
    """The ``type:`` value that selects this model in a union (sources' markdown, feed)."""
    field = model.model_fields.get("type")
    if field is None or typing.get_origin(field.annotation) is not Literal:
        return None
    values = typing.get_args(field.annotation)
    return str(values[0]) if len(values) == 1 else None


# --- the reference page --------------------------------------------------------------------


def type_text(setting: Setting) -> str:
    """What a key expects, in a reader's words, with the schema's bounds."""
    annotation = setting.info.annotation
    optional = _without_none(annotation) is not annotation
    text = _type_name(_without_none(annotation))
    limits = [_limit_text(meta) for meta in setting.info.metadata]
    text += "".join(f", {limit}" for limit in limits if limit)
    return f"{text}, or null" if optional else text


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{value}`" for value in typing.get_args(annotation))
    if origin is list:
        inner = _type_name(typing.get_args(annotation)[0])
        return f"list of {inner}s" if inner.isalpha() else f"list of: {inner}"
    if models_in(annotation):
        return "section" if isinstance(annotation, type) else "section (by `type`)"
    names = {str: "string", int: "whole number", float: "number", bool: "true or false"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _limit_text(meta: Any) -> str:
    bounds = (
        (annotated_types.Ge, "ge", "at least"),
        (annotated_types.Gt, "gt", "more than"),
        (annotated_types.Le, "le", "at most"),
        (annotated_types.Lt, "lt", "less than"),
    )
    for kind, attribute, words in bounds:
        if isinstance(meta, kind):
            return f"{words} {getattr(meta, attribute)}"
    if isinstance(meta, annotated_types.MinLen) and meta.min_length:
        return "not empty"
    return ""


def _flow(value: Any) -> str:
    """A value as one line of YAML, as it would be written in newsletter.yml."""
    if isinstance(value, BaseModel):
        value = value.model_dump()
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)
    return text.removesuffix("\n").removesuffix("\n...")


def _default_text(setting: Setting) -> str:
    if setting.info.is_required():
        return "required"
    if setting.models and not setting.is_list:
        return "see below"
    return f"`{_flow(setting.default)}`"


def _sections(model: type[BaseModel], path: str) -> Iterator[tuple[str, type[BaseModel], str]]:
    """Every model of the schema as (dotted path, model, what it is), depth first."""
    yield path, model, ""  # the caller knows what the key holding it means
    for setting in settings_of(model):
        for inner in setting.models:
            key = f"{path}.{setting.name}" if path else setting.name
            key += "[]" if setting.is_list else ""
            kind = _kind_of(inner)
            shown = f"{key} (type: {kind})" if kind and len(setting.models) > 1 else key
            for sub_path, sub_model, described in _sections(inner, shown):
                yield sub_path, sub_model, described or setting.description


def reference_markdown() -> str:
    """docs/config-reference.md: one table per section of newsletter.yml."""
    out = [
        REFERENCE_TITLE,
        "",
        "Generated from the schema in `src/newsletter/config.py` by `scripts/config-reference`;",
        "do not edit by hand. Paths are relative to newsletter.yml. `key[]` is a list whose",
        "items have the keys shown. `newsletter init` writes a newsletter.yml with every key",
        "and the same words as comments.",
    ]
    for path, model, described in _sections(Config, ""):
        kind = re.search(r" \(type: \w+\)", path)
        key = path.replace(kind.group(0), "") + kind.group(0) if kind else path
        out += ["", f"## `{key}`" if path else "## Top level", ""]
        if described:
            out += [described, ""]
        out += ["| key | expects | default | what it does |", "| --- | --- | --- | --- |"]
        for setting in settings_of(model):
            cells = (
                f"`{setting.name}`",
                type_text(setting),
                _default_text(setting),
                setting.description,
            )
            out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(out) + "\n"


# --- a commented newsletter.yml ------------------------------------------------------------


def commented_yaml(
    values: Mapping[str, Any], examples: Mapping[str, list[dict[str, Any]]] | None = None
) -> str:
    """newsletter.yml with every key of the schema, each under a comment saying what it
    does: ``values`` where given, the schema's default elsewhere. ``examples`` adds
    commented-out items to a list (another kind of source, a person), keyed by its name."""
    lines = _model_lines(Config, values, examples or {}, indent=0)
    return "\n".join(lines) + "\n"


def _comment(text: str, indent: int) -> list[str]:
    prefix = " " * indent + "# "
    return textwrap.wrap(text, width=92 - indent, initial_indent=prefix, subsequent_indent=prefix)


def _model_lines(
    model: type[BaseModel],
    values: Mapping[str, Any],
    examples: Mapping[str, list[dict[str, Any]]],
    indent: int,
) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for setting in settings_of(model):
        if indent == 0 and lines:
            lines.append("")
        lines += _comment(setting.description, indent)
        given = setting.name in values
        value = values[setting.name] if given else setting.default
        if setting.models and not setting.is_list:
            lines.append(f"{pad}{setting.name}:")
            inner = value if isinstance(value, Mapping) else {}
            lines += _model_lines(setting.models[0], inner, {}, indent + 2)
        elif setting.models:
            lines += _list_lines(setting, value, examples.get(setting.name, []), indent)
        else:
            lines.append(f"{pad}{setting.name}: {_flow(value)}")
    return lines


def _list_lines(
    setting: Setting, items: list[Any], examples: list[dict[str, Any]], indent: int
) -> list[str]:
    pad = " " * indent
    lines = [f"{pad}{setting.name}:" if items else f"{pad}{setting.name}: []"]
    for item in items:
        lines += _item_lines(setting, item, indent + 2)
    for example in examples:
        lines += [
            f"{pad}#{line[indent + 1 :]}" if line.strip() else line
            for line in _item_lines(setting, example, indent + 2)
        ]
    return lines


def _item_lines(setting: Setting, item: Mapping[str, Any], indent: int) -> list[str]:
    """One list item: its keys under their comments, the first key after the dash."""
    model = _model_for(setting.models, item)
    body = _model_lines(model, item, {}, indent + 2)
    first = next(i for i, line in enumerate(body) if not line.lstrip().startswith("#"))
    comments = [" " * indent + line.lstrip() for line in body[:first]]
    return [*comments, " " * indent + "- " + body[first].lstrip(), *body[first + 1 :]]


def _model_for(models: tuple[type[BaseModel], ...], item: Mapping[str, Any]) -> type[BaseModel]:
    for model in models:
        if len(models) == 1 or _kind_of(model) == item.get("type"):
            return model
    raise ValueError(f"no model of {models} takes type {item.get('type')!r}")


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
