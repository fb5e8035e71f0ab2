"""Typed reading of TOML tables with errors that name the file and the key.

Both the user's config and the rules files are edited by hand; a mistake must be reported as
one line such as ``config.toml: accounts[1].port: expected an integer, got 'abc'``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_MISSING = object()
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


class TomlError(ValueError):
    """A TOML file is unreadable or a key in it is wrong; str() is one line for the user."""

    def __init__(self, file: Path | str, key: str, why: str) -> None:
        self.file, self.key, self.why = str(file), key, why
        super().__init__(f"{file}: {key}: {why}" if key else f"{file}: {why}")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """'; did you mean 'x'?' for the closest of `choices` to a mistyped `name`, else ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.7)
    return f"; did you mean {close[0]!r}?" if close else ""


def load_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning I/O and syntax errors into TomlError."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise TomlError(path, "", "file not found") from None
    except OSError as exc:
        raise TomlError(path, "", f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TomlError(path, "", f"not valid TOML: {exc}") from None


class Table:
    """A TOML table being read: remembers which keys were used, so unknown ones are errors."""

    def __init__(self, data: dict[str, Any], file: Path | str, where: str = "") -> None:
        self.data, self.file, self.where = data, file, where
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def error(self, name: str, why: str) -> TomlError:
        return TomlError(self.file, self.key(name), why)

    def has(self, name: str) -> bool:
        return name in self.data

    def get(self, name: str, kind: type[T], default: Any = _MISSING) -> T:
        """The value of `name`, checked to be of `kind`; missing → default or an error."""
        self._used.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise self.misspelt(name) or self.error(name, "required key is missing")
            return default
        value = self.data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            want = _TYPE_NAMES.get(kind, kind.__name__)
            raise self.error(name, f"expected {want}, got {value!r}")
        return value

    def str_list(self, name: str, default: Any = _MISSING) -> list[str]:
        value = self.get(name, list, default)
        if value is default:
            return value
        for item in value:
            if not isinstance(item, str):
                raise self.error(name, f"expected a list of strings, got item {item!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = _MISSING) -> str:
        value = self.get(name, str, default)
        if value not in choices and value is not default:
            raise self.error(name, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def regex(self, name: str, pattern: str, index: int | None = None) -> re.Pattern[str]:
        where = f"{name}[{index}]" if index is not None else name
        try:
            return re.compile(pattern)
        except re.error as exc:
            raise self.error(where, f"bad regular expression {pattern!r}: {exc}") from None

    def table(self, name: str, default: Any = _MISSING) -> Table:
        value = self.get(name, dict, {} if default is not _MISSING else _MISSING)
        return Table(value, self.file, self.key(name))

    def tables(self, name: str) -> list[Table]:
        """An array of tables, e.g. ``[[accounts]]``, each with its index in the key."""
        items = self.get(name, list, [])
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise TomlError(self.file, f"{self.key(name)}[{i}]", "expected a table")
            out.append(Table(item, self.file, f"{self.key(name)}[{i}]"))
        return out

    def misspelt(self, name: str) -> TomlError | None:
        """An unknown key that looks like `name` (``user_name`` for ``username``): the error
        to give instead of "`name` is missing", which would send the user looking elsewhere."""
        for key in sorted(set(self.data) - self._used):
            if did_you_mean(key, [name]):
                return self.error(key, f"unknown key{did_you_mean(key, [name])}")
        return None

    def done(self) -> None:
        """Reject keys nobody asked for: a typo must not be silently ignored."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise self.error(unknown[0], f"unknown key{did_you_mean(unknown[0], self._used)}")
