"""Strict request parsing: bounded bodies, JSON objects with declared fields only, and
query strings with declared parameters only.

Each field is declared once (see ``specs.py``) and that one declaration both checks
requests and produces the JSON Schema in the OpenAPI document, so the document cannot
drift from what the server enforces.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from starlette.requests import Request

from proto.errors import BadParameter
from server.proxy.errors import ContentTooLarge, UnsupportedMediaType

JsonSchema = dict[str, Any]

_INTEGER_TEXT = re.compile(r"0|-?[1-9][0-9]{0,17}")
# JSON's number grammar, which is also what OpenAPI clients put in a query string.
_NUMBER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]{0,20})(?:\.[0-9]{1,20})?(?:[eE][+-]?[0-9]{1,3})?")


def _clip(text: str) -> str:
    return repr(text[:64])


@dataclass(frozen=True)
class StringField:
    description: str
    max_length: int
    min_length: int = 0
    # Anchored (^...$): matched with re.fullmatch here, and valid as ECMA regex for OpenAPI.
    pattern: str | None = None
    required: bool = True

    def check(self, name: str, value: object) -> str:
        if not isinstance(value, str):
            raise BadParameter(f"{name} must be a string")
        if not self.min_length <= len(value) <= self.max_length:
            raise BadParameter(
                f"{name} must be {self.min_length} to {self.max_length} characters long"
            )
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates ("\ud800" in JSON) are not text; protobuf would choke on them.
            raise BadParameter(f"{name} is not valid Unicode text") from None
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise BadParameter(f"{name} has characters or a form that is not allowed")
        return value

    def from_text(self, name: str, text: str) -> str:
        return self.check(name, text)

    def schema(self) -> JsonSchema:
        out: JsonSchema = {
            "type": "string",
            "description": self.description,
            "minLength": self.min_length,
            "maxLength": self.max_length,
        }
        if self.pattern is not None:
            out["pattern"] = self.pattern
        return out


@dataclass(frozen=True)
class IntegerField:
    description: str
    minimum: int
    maximum: int
    required: bool = False
    default: int = 0

    def check(self, name: str, value: object) -> int:
        # bool is an int to Python, and 5.0 is a float to JSON: neither is accepted.
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadParameter(f"{name} must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise BadParameter(f"{name} must be between {self.minimum} and {self.maximum}")
        return value

    def from_text(self, name: str, text: str) -> int:
        if not _INTEGER_TEXT.fullmatch(text):
            raise BadParameter(f"{name} must be an integer")
        return self.check(name, int(text))

    def schema(self) -> JsonSchema:
        return {
            "type": "integer",
            "description": self.description,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "default": self.default,
        }


@dataclass(frozen=True)
class NumberField:
    description: str
    minimum: float
    maximum: float
    required: bool = False

    def check(self, name: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadParameter(f"{name} must be a number")
        number = float(value)
        if not math.isfinite(number) or not self.minimum <= number <= self.maximum:
            raise BadParameter(f"{name} must be between {self.minimum:g} and {self.maximum:g}")
        return number

    def from_text(self, name: str, text: str) -> float:
        if not _NUMBER_TEXT.fullmatch(text):
            raise BadParameter(f"{name} must be a number")
        return self.check(name, float(text))

    def schema(self) -> JsonSchema:
        return {
            "type": "number",
            "description": self.description,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }


@dataclass(frozen=True)
class ListField:
    """A JSON array of strings, each checked by ``item``, at most ``max_items``."""

    description: str
    item: StringField
    max_items: int
    required: bool = False

    def check(self, name: str, value: object) -> list[str]:
        if not isinstance(value, list):
            raise BadParameter(f"{name} must be a list of strings")
        if len(value) > self.max_items:
            raise BadParameter(f"{name} may hold at most {self.max_items} items")
        return [self.item.check(f"{name}[{i}]", v) for i, v in enumerate(value)]

    def from_text(self, name: str, text: str) -> list[str]:
        raise BadParameter(f"{name} is not a query parameter")

    def schema(self) -> JsonSchema:
        return {
            "type": "array",
            "description": self.description,
            "items": self.item.schema(),
            "maxItems": self.max_items,
        }


Field = StringField | IntegerField | NumberField | ListField


@dataclass(frozen=True)
class BodySpec:
    """A JSON object body: these fields and no others."""

    fields: Mapping[str, Field]

    def schema(self) -> JsonSchema:
        return {
            "type": "object",
            "properties": {name: f.schema() for name, f in self.fields.items()},
            "required": [name for name, f in self.fields.items() if f.required],
            "additionalProperties": False,
        }


@dataclass(frozen=True)
class QueryParam:
    name: str
    field: Field
    # Repeated parameters (``?label=a=1&label=b=2``) become a list of at most max_items.
    max_items: int = 0

    def schema(self) -> JsonSchema:
        if not self.max_items:
            return self.field.schema()
        return {"type": "array", "items": self.field.schema(), "maxItems": self.max_items}


def require_json(request: Request) -> None:
    """Bodies are JSON only. Besides strictness, this is CSRF defence in depth: a form on
    another site can post text/plain or form encodings without a preflight, not JSON."""
    values = request.headers.getlist("content-type")
    if len(values) != 1:
        raise UnsupportedMediaType("send the body as Content-Type: application/json")
    media_type, _, params = values[0].partition(";")
    charset_ok = params.strip().lower().replace(" ", "") in ("", "charset=utf-8")
    if media_type.strip().lower() != "application/json" or not charset_ok:
        raise UnsupportedMediaType("send the body as Content-Type: application/json")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``max_bytes``: from
    Content-Length before reading anything, else while reading (chunked uploads)."""
    lengths = request.headers.getlist("content-length")
    if len(lengths) > 1:
        raise BadParameter("more than one Content-Length header")
    if lengths:
        text = lengths[0].strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise BadParameter("malformed Content-Length header")
        if int(text) > max_bytes:
            raise ContentTooLarge(f"the body exceeds {max_bytes} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise ContentTooLarge(f"the body exceeds {max_bytes} bytes")
    return bytes(body)


def _reject_constant(name: str) -> NoReturn:
    raise BadParameter(f"{name} is not JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise BadParameter(f"duplicate field {_clip(key)}")
        obj[key] = value
    return obj


def parse_json_object(raw: bytes, spec: BodySpec) -> dict[str, Any]:
    """The body as a dict holding exactly the spec's fields (absent optional ones get
    their default), each checked."""
    try:
        text = raw.decode("utf-8")
        doc = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers JSONDecodeError and integers too long to convert.
        raise BadParameter("the body is not a JSON document") from exc
    if not isinstance(doc, dict):
        raise BadParameter("the body must be a JSON object")
    unknown = sorted(set(doc) - set(spec.fields))
    if unknown:
        raise BadParameter(f"unknown field {_clip(unknown[0])}")
    out: dict[str, Any] = {}
    for name, field in spec.fields.items():
        if name in doc:
            out[name] = field.check(name, doc[name])
        elif field.required:
            raise BadParameter(f"missing field {name!r}")
        elif isinstance(field, IntegerField):
            out[name] = field.default
        elif isinstance(field, ListField):
            out[name] = []
    return out


def parse_query(request: Request, params: Sequence[QueryParam]) -> dict[str, Any]:
    """The query string as a dict of declared parameters; anything else is refused."""
    by_name = {p.name: p for p in params}
    out: dict[str, Any] = {}
    for key, text in request.query_params.multi_items():
        param = by_name.get(key)
        if param is None:
            raise BadParameter(f"unknown query parameter {_clip(key)}")
        value = param.field.from_text(key, text)
        if param.max_items:
            values = out.setdefault(key, [])
            if len(values) >= param.max_items:
                raise BadParameter(f"at most {param.max_items} {key} parameters")
            values.append(value)
        elif key in out:
            raise BadParameter(f"query parameter {key!r} given more than once")
        else:
            out[key] = value
    return out
