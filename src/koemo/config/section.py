"""What a config section is (koemo.config.schema builds every section from this): a strict,
frozen pydantic model that remembers the mapping it was built from, fields made by `setting`
(one line of help, and marks such as `affects_results`), cross-field rules broken by `refuse`.

Each parsed section keeps what was written (`as_dict()`): fingerprints, run.json and
config.yaml are computed from the config AS WRITTEN (after `base:` and `--set`), never from the
defaults the schema fills in, so no cache or run key changes when a default or a rule is added.
"""
from __future__ import annotations

import copy
import json
from typing import Annotated, Any, ClassVar, Hashable, Mapping, Sequence

from annotated_types import Ge, Gt, Le, Lt
from pydantic import (BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, PrivateAttr,
                      StrictFloat, StrictInt, StringConstraints, ValidationInfo, model_validator)
from pydantic.config import JsonDict

from koemo.config.allowed import shown

# The kinds of numbers settings take: strict (a YAML `true` is not 1, a float is not an
# integer) and in range. Choices and setting-specific rules are koemo.config.schema's.
Whole = Annotated[StrictInt, Ge(1)]
AtLeast2 = Annotated[StrictInt, Ge(2)]
Count = Annotated[StrictInt, Ge(0)]
Seed = Annotated[StrictInt, Ge(0), Lt(2**32)]          # numpy's and scikit-learn's seed range
Positive = Annotated[StrictFloat, Gt(0)]
NonNegative = Annotated[StrictFloat, Ge(0)]
Share = Annotated[StrictFloat, Ge(0), Le(1)]
Probability = Annotated[StrictFloat, Gt(0), Lt(1)]
Dropout = Annotated[StrictFloat, Ge(0), Lt(1)]
Decay = Annotated[StrictFloat, Gt(0), Le(1)]
Name = Annotated[str, StringConstraints(min_length=1)]


def distinct(items: Sequence[Hashable]) -> bool:
    """No item listed twice (a Rule check)."""
    return len(set(items)) == len(items)


def setting(default: Any, help: str, *, affects_results: bool = True, **marks: bool) -> Any:
    """A field with its one line of help. `affects_results=False` marks a setting that never
    changes what is computed (devices, speed knobs, names); `marks` (stored, model_input) tag
    the feature settings the feature store and the predictor checks key on."""
    extra: JsonDict = dict(marks)
    if not affects_results:
        extra["affects_results"] = False
    if isinstance(default, (list, dict)):
        return Field(default_factory=lambda d=default: copy.deepcopy(d), description=help,
                     json_schema_extra=extra or None)
    return Field(default, description=help, json_schema_extra=extra or None)


def refuse(info: ValidationInfo, key: str, value: Any, allowed: str) -> None:
    """A cross-field rule broken: ValueError `key: value is not allowed: must be allowed`
    (koemo.config.load prefixes the section's path). A saved config (validation context
    `lenient`) keeps what it wrote: koemo.config.load.parse_saved_config notes it instead."""
    if not (info.context or {}).get("lenient"):
        raise ValueError(f"{key}: {shown(value)} is not allowed: must be {allowed}")


class Section(BaseModel):
    """A config section: strict (unknown keys fail), frozen, remembering what was written."""
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
    # Sections no training stage reads (a class attribute, not a setting).
    unread_by_training: ClassVar[bool] = False
    _written: dict = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_written(cls, data: Any, handler: ModelWrapValidatorHandler[Section]) -> Section:
        model = handler(data)
        if isinstance(data, Section):
            model._written = copy.deepcopy(data._written)
        elif isinstance(data, Mapping):
            model._written = copy.deepcopy(dict(data))
        return model

    def as_dict(self) -> dict:
        """The section as written (no schema defaults): what fingerprints and run files see."""
        return copy.deepcopy(self._written)

    # Equal settings are equal sections, however they were written.
    def __eq__(self, other: Any) -> bool:
        return type(self) is type(other) and self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(json.dumps(self.model_dump(), sort_keys=True, default=str))

    def __contains__(self, key: str) -> bool:
        """Whether `key` was written (not whether the schema has a default for it)."""
        return key in self._written


def section_type(annotation: Any) -> type[Section] | None:
    """The Section a field holds (itself, or inside Optional), or None for a leaf setting."""
    if isinstance(annotation, type) and issubclass(annotation, Section):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, Section):
            return arg
    return None


def field_marks(section: type[Section], key: str) -> JsonDict:
    """The marks `setting` gave field `key` of `section` (affects_results, stored, model_input)."""
    marks = section.model_fields[key].json_schema_extra
    return marks if isinstance(marks, dict) else {}


def speed_settings(section: type[Section]) -> tuple[str, ...]:
    """The settings of `section` marked as not changing results (in schema order)."""
    return tuple(k for k in section.model_fields
                 if field_marks(section, k).get("affects_results") is False)
