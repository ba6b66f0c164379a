"""The web API's JSON is the protobuf messages' JSON: one mapping for the proxy, which
renders replies, and for `mez`, which parses them back, so the REST shapes (and the
OpenAPI schemas derived from the same descriptors) cannot drift from auth.proto.

The mapping is protobuf's canonical JSON with the proto field names and every field
present (an empty list is ``[]``, not missing), plus one declared change: a
``*_json`` text field that holds a JSON object travels as that object, under the name
``JSON_OBJECT_FIELDS`` gives it (an audit event's ``fields_json`` is ``fields``), so
browsers need not parse JSON inside JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from google.protobuf.message import Message

M = TypeVar("M", bound="Message")

# (message full name, proto field) -> JSON name of the parsed object.
JSON_OBJECT_FIELDS: Mapping[tuple[str, str], str] = {
    ("mezite.v1.AuditEvent", "fields_json"): "fields",
}


def _objects_out(message: Message, doc: dict[str, Any]) -> None:
    descriptor = message.DESCRIPTOR
    for fld in descriptor.fields:
        renamed = JSON_OBJECT_FIELDS.get((descriptor.full_name, fld.name))
        if renamed is not None:
            text = doc.pop(fld.name, "")
            try:
                value = json.loads(text) if text else {}
            except ValueError:
                value = {}
            doc[renamed] = value if isinstance(value, dict) else {}
        elif fld.message_type is not None and fld.name in doc:
            if fld.message_type.GetOptions().map_entry:
                continue
            value = getattr(message, fld.name)
            if fld.is_repeated:
                for child, child_doc in zip(value, doc[fld.name], strict=True):
                    _objects_out(child, child_doc)
            else:
                _objects_out(value, doc[fld.name])


def _objects_in(descriptor: Any, doc: dict[str, Any]) -> None:
    for fld in descriptor.fields:
        renamed = JSON_OBJECT_FIELDS.get((descriptor.full_name, fld.name))
        if renamed is not None:
            value = doc.pop(renamed, None)
            if isinstance(value, dict):
                doc[fld.name] = json.dumps(value, sort_keys=True)
        elif fld.message_type is not None and not fld.message_type.GetOptions().map_entry:
            value = doc.get(fld.name)
            children = value if isinstance(value, list) else [value]
            for child in children:
                if isinstance(child, dict):
                    _objects_in(fld.message_type, child)


def to_json(message: Message) -> dict[str, Any]:
    """The message as the web API sends it."""
    from google.protobuf.json_format import MessageToDict

    doc = MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _objects_out(message, doc)
    return doc


def from_json(doc: Mapping[str, Any], cls: type[M]) -> M:
    """A web API reply as its message. Fields this client does not know are ignored (a
    newer proxy may add some); a field of the wrong type is a ParseError."""
    from google.protobuf.json_format import ParseDict

    mutable = json.loads(json.dumps(doc))  # a private deep copy to rename in
    _objects_in(cls.DESCRIPTOR, mutable)
    return ParseDict(mutable, cls(), ignore_unknown_fields=True)
