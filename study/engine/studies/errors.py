"""Bad input in a study file, and pydantic's errors as lines of `key.path: what is wrong`."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from pydantic import BaseModel, ValidationError


class ConfigError(Exception):
    """Bad input in a study file; `problems` are lines of `key.path: what is wrong`."""

    def __init__(self, source: str | Path | None, problems: list[str]):
        # source None: the problems already name their files (errors of several files).
        self.source, self.problems = source, problems
        super().__init__("\n".join(p if source is None else f"{source}: {p}" for p in problems))


def messages(error: ValidationError, schema: type[BaseModel]) -> list[str]:
    out = []
    for item in error.errors():
        loc = location(item["loc"])
        kind, text = item["type"], item["msg"]
        if text.startswith("Value error, "):
            text = text[len("Value error, "):]
        if kind == "extra_forbidden":
            out.append(f"{loc}: unknown key{_allowed_keys(schema, item['loc'])}")
        elif kind == "missing":
            out.append(f"{loc}: required key is missing")
        elif kind == "value_error":  # our own validators: the message names the value
            out.append(f"{loc}: {text}" if loc else text)
        else:
            out.append(f"{loc}: {item['input']!r} is not allowed: {text}")
    return out


def location(loc: tuple) -> str:
    """('grid', 'optimizer', 2) -> 'grid.optimizer[2]'; drops pydantic's union-branch labels."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"(function-.*|list\[.*\]|int|str|float|bool|dict\[.*\]|.*\]\.)",
                          str(part)):
            continue
        else:
            text += ("." if text else "") + str(part)
    return text


def _allowed_keys(schema: type[BaseModel], loc: tuple) -> str:
    model = schema
    for part in loc[:-1]:
        if isinstance(part, int):  # an item of a list of tables: list[Model] was unwrapped
            continue
        annotation = model.model_fields.get(part) if isinstance(part, str) else None
        inner = getattr(annotation, "annotation", None) if annotation else None
        candidates = [a for a in getattr(inner, "__args__", (inner,))
                      if isinstance(a, type) and issubclass(a, BaseModel)]
        if not candidates:
            return ""
        model = candidates[0]
    allowed = sorted(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (allowed: {', '.join(allowed)})"


def non_finite_numbers(raw, path: str = "") -> list[str]:
    """`key.path: inf is not a finite number` for every inf or NaN in a parsed TOML file
    (TOML reads 1e400 as infinity, and `inf` and `nan` are TOML numbers)."""
    if isinstance(raw, float) and not (raw == raw and abs(raw) != float("inf")):
        return [f"{path}: {raw!r} is not allowed: numbers must be finite (TOML reads 1e400 "
                f"and beyond as infinity)"]
    if isinstance(raw, dict):
        return [p for key, value in raw.items()
                for p in non_finite_numbers(value, f"{path}.{key}" if path else str(key))]
    if isinstance(raw, list):
        return [p for i, value in enumerate(raw) for p in non_finite_numbers(value, f"{path}[{i}]")]
    return []
