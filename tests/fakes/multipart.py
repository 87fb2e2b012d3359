"""A strict multipart/form-data parser for the fakes (the stdlib has none left)."""

from __future__ import annotations

import re


def parse_multipart(
    body: bytes, content_type: str
) -> tuple[dict[str, str], dict[str, list[tuple[str, str, bytes]]]]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("no boundary")
    boundary = b"--" + m.group(1).encode()
    fields: dict[str, str] = {}
    files: dict[str, list[tuple[str, str, bytes]]] = {}
    parts = body.split(boundary)
    if not parts[-1].startswith(b"--"):
        raise ValueError("no closing boundary")
    for part in parts[1:-1]:
        if not part.startswith(b"\r\n"):
            raise ValueError("bad part start")
        head, sep, data = part[2:].partition(b"\r\n\r\n")
        if not sep or not data.endswith(b"\r\n"):
            raise ValueError("bad part")
        data = data[:-2]
        headers = {}
        for line in head.decode().split("\r\n"):
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        disp = headers.get("content-disposition", "")
        name_m = re.search(r'name="([^"]*)"', disp)
        if not name_m:
            raise ValueError("part without a name")
        name = name_m.group(1)
        file_m = re.search(r'filename="([^"]*)"', disp)
        if file_m:
            files.setdefault(name, []).append(
                (file_m.group(1), headers.get("content-type", ""), data))
        else:
            fields[name] = data.decode()
    return fields, files
