"""What the YAML loaders of monitors, alert rules and SLOs share: which files a path
names, and how a validation error names its place.

- :func:`yaml_files`: a file, or the ``*.yml``/``*.yaml`` files of a directory in name
  order; ConfigError when the path does not exist or the directory holds none.
- :func:`load_unique`: every item the ``parse`` of each file returns, refusing a name
  defined twice across the files (``m.yml: rule 'x' is also defined in a.yml``).
- :func:`place`: a msgspec validation error as a ConfigError naming the file and the
  field (``m.yml: monitors[0].interval: expected a string``); an unknown field points to
  the documentation, an invalid choice lists the choices when the field is in ``enums``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec

from shopwatch.errors import ConfigError


class Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


def yaml_files(path: Path) -> list[Path]:
    """The YAML files ``path`` names (see the module docstring)."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".yml", ".yaml"))
        if not files:
            raise ConfigError(f"{path}: no .yml or .yaml files in this directory")
        return files
    if path.is_file():
        return [path]
    raise ConfigError(f"{path}: no such file or directory")


def load_unique(path: Path, parse: Callable[[Path], list[T]], noun: str) -> list[T]:
    """Every item of the files of ``path`` (:func:`yaml_files`), by ``parse(file)``; a
    name used in two files is a ConfigError naming both."""
    found: list[T] = []
    seen: dict[str, str] = {}
    for file in yaml_files(path):
        for item in parse(file):
            if item.name in seen:
                raise ConfigError(f"{file.name}: {noun} {item.name!r} is also defined in "
                                  f"{seen[item.name]}")
            seen[item.name] = file.name
            found.append(item)
    return found


def place(exc: msgspec.ValidationError, source: str, whole: str, doc: str,
          enums: Mapping[str, Iterable[str]] | None = None) -> ConfigError:
    """``exc`` as ``source: path: reason``; ``whole`` names the document when the error
    has no path, ``doc`` the page that lists the fields, ``enums`` the choices of fields
    by the last part of their path (``kind``, ``sli``)."""
    message = str(exc).replace("`", "")
    reason, _, path = message.partition(" - at $")
    path = path.lstrip(".")
    if reason.startswith("Object contains unknown field "):
        field = reason.removeprefix("Object contains unknown field ")
        path = f"{path}.{field}" if path else field
        reason = f"unknown field (see {doc})"
    elif reason.startswith("Invalid enum value"):
        last = path.rsplit(".", 1)[-1]
        if enums and last in enums:
            reason += f" (one of {', '.join(enums[last])})"
    return ConfigError(f"{source}: {path or whole}: {reason[:1].lower()}{reason[1:]}")
