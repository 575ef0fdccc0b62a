"""Rendering of resources as Twilio-shaped JSON or XML (API-2, API-6, API-7).

A resource is a plain ``dict`` of Twilio's snake_case field names; XML uses the PascalCase
form of the same names, so both formats come from one representation.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from starlette.responses import Response

Resource = dict[str, Any]


def rfc2822(value: datetime | None) -> str | None:
    """``Tue, 04 Nov 2025 10:00:00 +0000`` for an aware UTC datetime (spec conventions)."""
    return None if value is None else format_datetime(value)


def pascal(name: str) -> str:
    """``date_created`` → ``DateCreated``."""
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def singular(list_key: str) -> str:
    """The XML element of one list item: ``incoming_phone_numbers`` → ``IncomingPhoneNumber``."""
    name = pascal(list_key)
    return name[:-1] if name.endswith("s") else name


class Renderer:
    """Renders resources, lists and errors in the format and flavour a request asked for."""

    def __init__(self, *, json_format: bool, restcomm: bool) -> None:
        self.json_format = json_format
        self.root = "RestcommResponse" if restcomm else "TwilioResponse"

    def resource(self, element: str, body: Resource, status: int = 200) -> Response:
        """One resource (``element`` is its XML name, e.g. ``Client``)."""
        if self.json_format:
            return _json(body, status)
        root = ET.Element(self.root)
        _fill(ET.SubElement(root, element), body)
        return _xml(root, status)

    def listing(self, key: str, items: Sequence[Resource], paging: Mapping[str, Any]) -> Response:
        """A page of a list under ``key`` (e.g. ``clients``) with Twilio's paging fields."""
        if self.json_format:
            return _json({key: list(items), **paging}, 200)
        root = ET.Element(self.root)
        attrs = {k.replace("_", ""): _text(v) for k, v in paging.items()}
        container = ET.SubElement(root, pascal(key), attrs)
        for item in items:
            _fill(ET.SubElement(container, singular(key)), item)
        return _xml(root, 200)

    def error(self, code: int, status: int, message: str, more_info: str) -> Response:
        """Twilio's error shape (API-5)."""
        if self.json_format:
            body = {"code": code, "message": message, "more_info": more_info, "status": status}
            return _json(body, status)
        root = ET.Element(self.root)
        exc = ET.SubElement(root, "RestException")
        for name, value in (
            ("Code", code),
            ("Message", message),
            ("MoreInfo", more_info),
            ("Status", status),
        ):
            ET.SubElement(exc, name).text = str(value)
        return _xml(root, status)


def _fill(element: ET.Element, body: Mapping[str, Any]) -> None:
    for name, value in body.items():
        child = ET.SubElement(element, pascal(name))
        if isinstance(value, Mapping):
            _fill(child, value)
        elif isinstance(value, list):
            item_name = singular(name)
            for item in value:
                sub = ET.SubElement(child, item_name)
                if isinstance(item, Mapping):
                    _fill(sub, item)
                else:
                    sub.text = _text(item)
        else:
            child.text = _text(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json(body: Any, status: int) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status_code=status, media_type="application/json"
    )


def _xml(root: ET.Element, status: int) -> Response:
    data = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return Response(data, status_code=status, media_type="application/xml")
