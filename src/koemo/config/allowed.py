"""What a setting accepts, in words, read from its annotation in koemo.config.schema.

The schema writes each setting's legal values once, as types: `Literal` choices, strict numbers
with ranges (annotated_types Ge/Gt/Le/Lt/Len), unions, lists, and `Rule` for what types cannot
say (an odd width, distinct items, a device pattern), as `Annotated[base, Rule(text, check)]`.
`describe` turns that annotation into the phrase a config error and docs/configuration.md show
("an integer >= 1", "cp949 or utf-8", "null, or a number in (0, 1)"), so the words can never
disagree with what is checked.
"""
from __future__ import annotations

import json
import types
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Union, get_args, get_origin

from pydantic import AfterValidator, GetCoreSchemaHandler
from pydantic.fields import FieldInfo
from pydantic_core import CoreSchema


@dataclass(frozen=True)
class Rule:
    """A legal-value rule types cannot express: `check(value)` is true for a legal value and
    `text` says in words what is allowed (it replaces the words `describe` would derive).

    Written as `Annotated[base, ..., Rule(text, check)]`, so the schema's aliases stay types a
    type checker reads; pydantic checks it after `base` (and the metadata before it) validates."""
    text: str
    check: Callable[[Any], bool]

    def _validate(self, value: Any) -> Any:
        if not self.check(value):
            raise ValueError(f"must be {self.text}")
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return AfterValidator(self._validate).__get_pydantic_core_schema__(source, handler)


def shown(value: Any) -> str:
    """A value as a config file writes it (true, null, "tpu", [1, 2])."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _word(value: Any) -> str:
    return shown(value) if not isinstance(value, str) else value


def _choices(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _bounds(metadata: tuple) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        for key in ("ge", "gt", "le", "lt", "multiple_of", "min_length", "max_length"):
            if getattr(item, key, None) is not None:
                found[key] = getattr(item, key)
    return found


def _number(kind: str, bounds: dict[str, Any]) -> str:
    """`an integer >= 1`, `an integer from 0 to 4`, `a number in (0, 1]`, `a multiple of 4 ...`."""
    noun = "an integer" if kind == "int" else "a number"
    low = ("[", bounds["ge"]) if "ge" in bounds else ("(", bounds["gt"]) if "gt" in bounds else None
    high = ("]", bounds["le"]) if "le" in bounds else (")", bounds["lt"]) if "lt" in bounds else None
    if "multiple_of" in bounds:
        noun = f"a multiple of {bounds['multiple_of']}"
    if low and high:
        if kind == "int":
            first = low[1] if low[0] == "[" else low[1] + 1
            last = high[1] if high[0] == "]" else high[1] - 1
            return f"{noun} from {first} to {last}"
        return f"{noun} in {low[0]}{_word(low[1])}, {_word(high[1])}{high[0]}"
    if low:
        return f"{noun} {'>=' if low[0] == '[' else '>'} {_word(low[1])}"
    if high:
        return f"{noun} {'<=' if high[0] == ']' else '<'} {_word(high[1])}"
    return noun


def _list_of(bounds: dict[str, Any]) -> str:
    low, high = bounds.get("min_length"), bounds.get("max_length")
    if low is not None and low == high:
        return f"a list of {low}"
    return "a non-empty list of" if low == 1 else f"a list of at least {low}" if low else "a list of"


def _plural(text: str) -> str:
    """`an integer >= 1` -> `integers >= 1` (the items of a list)."""
    for one, many in (("an odd integer", "odd integers"), ("an integer", "integers"),
                      ("a number", "numbers"), ("a list", "lists"), ("a mapping", "mappings"),
                      ("a multiple", "multiples")):
        if text.startswith(one):
            return many + text[len(one):]
    return text


def _union_words(members: tuple) -> list[str] | None:
    """The members of a union as plain choices (null, true, false, auto), or None when one of
    them needs a phrase of its own."""
    words: list[str] = []
    for member in members:
        if member is type(None):
            words.append("null")
        elif member is bool:
            words += ["true", "false"]
        elif get_origin(member) is Literal:
            words += [_word(v) for v in get_args(member)]
        else:
            return None
    return words


def _union(members: tuple) -> str | None:
    """Plain choices first (`true, false or auto`), then the members that need a phrase; a
    phrase repeating the choices says `one of those` instead."""
    plain = [m for m in members if _union_words((m,)) is not None]
    if all(m is type(None) for m in plain) and all(describe(m) is None for m in members
                                                    if m not in plain):
        return None                      # any value of its types (or null)
    words = _union_words(tuple(plain)) or []
    choices = _choices(words) if words else ""
    phrases = [describe(m) or _type_word(m) for m in members if m not in plain]
    if choices:
        phrases = [p.replace(choices, "one of those") for p in phrases]
    if not phrases:
        return choices
    return f"{choices}, or {_choices(phrases)}" if choices else _choices(phrases)


def describe(annotation: Any, metadata: tuple = ()) -> str | None:
    """What `annotation` (with pydantic's field `metadata`) accepts, in words; None when it
    accepts any value of its type (free text, a bool, a mapping)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return describe(args[0], tuple(args[1:]) + tuple(metadata))
    for item in metadata:
        if isinstance(item, Rule):
            return item.text
    bounds = _bounds(metadata)
    if origin is Literal:
        return _choices([_word(v) for v in args])
    if origin in (Union, types.UnionType):
        return _union(args)
    if origin in (list, tuple):
        inner = describe(args[0]) if args else None
        if inner is None and not bounds:
            return None
        plain = get_origin(args[0]) is Literal or _union_words(get_args(args[0])) is not None
        items = f": {inner}" if plain else f" {_plural(inner or _type_word(args[0]))}"
        return _list_of(bounds) + items
    if origin is dict:
        key, value = (describe(a) for a in args)
        if key is None and value is None:
            return None
        return f"a mapping of {key or 'names'} to {value or _type_word(args[1])}"
    if annotation in (int, float) and bounds:
        return _number(annotation.__name__, bounds)
    if annotation is str and bounds.get("min_length"):
        return "non-empty text"
    return None


def _type_word(annotation: Any) -> str:
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return {int: "an integer", float: "a number", str: "text", bool: "true or false"}.get(
        annotation, getattr(annotation, "__name__", str(annotation)))


def field_allowed(field: FieldInfo) -> str | None:
    """`describe` for a pydantic FieldInfo (its annotation and the metadata pydantic split off)."""
    return describe(field.annotation, tuple(field.metadata))
