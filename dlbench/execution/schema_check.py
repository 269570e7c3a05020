"""A small JSON Schema checker for dlbench's own schema files, without a dependency.

:func:`first_error` walks a document against a schema (``result-v1.json``) and returns the first
field that does not match: its JSON pointer, what the schema expects there and what was found.
It knows exactly the keywords dlbench's schemas use (listed in :data:`KEYWORDS`); a schema with
any other keyword is refused (``ValueError``) instead of being half-checked, so the checker and the
schema cannot drift apart silently. ``jsonschema`` (a dev dependency) is the reference it is
tested against; ``import dlbench`` stays free of it.

Example:
    >>> first_error({"a": "x"}, {"properties": {"a": {"type": "integer"}}})
    Violation(pointer='/a', expected='an integer', found='"x"')
    >>> first_error({"a": 1}, {"properties": {"a": {"type": "integer"}}}) is None
    True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

#: Keywords that are checked.
KEYWORDS = frozenset(
    {
        "type",
        "const",
        "enum",
        "minimum",
        "minLength",
        "minItems",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "allOf",
        "if",
        "then",
        "else",
        "$ref",
    }
)
#: Keywords that say nothing about validity (documentation, definitions).
ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description", "$comment", "default"})

_TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


@dataclass(frozen=True)
class Violation:
    """Where a document departs from its schema.

    Attributes:
        pointer: JSON pointer of the offending field (``/cells/3/status``; ``""`` for the root).
        expected: What the schema asks for there, in words.
        found: What the document holds there, in words.
    """

    pointer: str
    expected: str
    found: str


def first_error(instance: Any, schema: dict[str, Any]) -> Violation | None:
    """The first place where ``instance`` does not match ``schema`` (document order), or None.

    Raises:
        ValueError: The schema uses a keyword this checker does not know.
    """
    return _check(instance, schema, schema, "")


def _is_type(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "number":
        return isinstance(value, (int, float))
    if name == "integer":  # JSON Schema: 3.0 is an integer
        return isinstance(value, int) or (
            isinstance(value, float) and math.isfinite(value) and value.is_integer()
        )
    raise ValueError(f"Expected a JSON Schema type name. Received: {name!r}")


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it: ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def describe(value: Any) -> str:
    """A value in words, short: ``"x"``, ``3``, ``null``, ``an object``, ``an array of 2 items``."""
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    if isinstance(value, list):
        return f"an array of {len(value)} item{'s' if len(value) != 1 else ''}"
    try:
        text = json.dumps(value, allow_nan=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pointer_part(key: str | int) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"Expected a local $ref (#/...). Received: {ref!r}")
    node: Any = root
    for part in filter(None, ref[1:].split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _check(value: Any, schema: Any, root: dict[str, Any], ptr: str) -> Violation | None:
    if schema is True:
        return None
    if schema is False:
        return Violation(ptr, "absent (not allowed here)", describe(value))
    unknown = set(schema) - KEYWORDS - ANNOTATIONS
    if unknown:
        raise ValueError(
            f"Expected schema keywords among {sorted(KEYWORDS)}. Received: {sorted(unknown)}"
        )
    if "$ref" in schema:
        err = _check(value, _resolve(root, schema["$ref"]), root, ptr)
        if err:
            return err
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, n) for n in names):
            return Violation(ptr, " or ".join(_TYPE_NAMES[n] for n in names), describe(value))
    if "const" in schema and not _json_equal(value, schema["const"]):
        return Violation(ptr, describe(schema["const"]), describe(value))
    if "enum" in schema and not any(_json_equal(value, e) for e in schema["enum"]):
        options = ", ".join(describe(e) for e in schema["enum"])
        return Violation(ptr, f"one of {options}", describe(value))
    number = _is_type(value, "number")
    if "minimum" in schema and number and not value >= schema["minimum"]:
        return Violation(ptr, f"a number >= {schema['minimum']}", describe(value))
    if "minLength" in schema and isinstance(value, str) and len(value) < schema["minLength"]:
        return Violation(
            ptr, f"a string of at least {schema['minLength']} characters", describe(value)
        )
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                return Violation(
                    f"{ptr}/{_pointer_part(key)}", "present (a required field)", "no such field"
                )
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = props.get(key, extra)
            err = _check(item, sub, root, f"{ptr}/{_pointer_part(key)}")
            if err:
                return err
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            return Violation(
                ptr, f"an array of at least {schema['minItems']} items", describe(value)
            )
        if "items" in schema:
            for i, item in enumerate(value):
                err = _check(item, schema["items"], root, f"{ptr}/{i}")
                if err:
                    return err
    for sub in schema.get("allOf", ()):
        err = _check(value, sub, root, ptr)
        if err:
            return err
    if "if" in schema:
        branch = "then" if _check(value, schema["if"], root, ptr) is None else "else"
        if branch in schema:
            err = _check(value, schema[branch], root, ptr)
            if err:
                when = _condition(schema["if"], negate=branch == "else")
                return Violation(err.pointer, f"{err.expected}{when}", err.found)
    return None


def _condition(schema: dict[str, Any], negate: bool) -> str:
    """`` when `status` is "failed"`` for an ``if`` on one field's value; ``""`` otherwise."""
    props = schema.get("properties", {})
    if set(schema) == {"properties"} and len(props) == 1:
        ((key, sub),) = props.items()
        if set(sub) == {"const"}:
            verb = "is not" if negate else "is"
            return f" when `{key}` {verb} {describe(sub['const'])}"
    return ""
