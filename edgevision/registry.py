"""A small name → object registry whose unknown-name error suggests close names (as in timm)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from edgevision.errors import UnknownNameError

T = TypeVar("T")


def suggest(name: str, choices: list[str], n: int = 3) -> str:
    """Return ``"; did you mean 'a' or 'b'?"`` for close matches of ``name``, else ``""``."""
    close = difflib.get_close_matches(name, choices, n=n, cutoff=0.6)
    if not close:
        lowered = name.lower()
        close = [c for c in choices if lowered and lowered in c.lower()][:n]
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


class Registry(Generic[T]):
    """Maps names to objects; ``register`` works as a decorator."""

    def __init__(self, kind: str, hint: str = "") -> None:
        self.kind = kind
        self.hint = hint
        self._items: dict[str, T] = {}
        self._retired: dict[str, str] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (names are unique)."""

        def decorator(obj: T) -> T:
            if name in self._items or name in self._retired:
                raise ValueError(f"{self.kind} {name!r} is registered twice or retired")
            self._items[name] = obj
            return obj

        return decorator

    def retire(self, name: str, instead: str) -> None:
        """Make ``name``, no longer registered, fail with what to use ``instead``."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered: it cannot be retired")
        self._retired[name] = instead

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise an error suggesting close names
        (or, for a retired name, what replaced it)."""
        try:
            return self._items[name]
        except KeyError:
            if name in self._retired:
                raise UnknownNameError(f"{self.kind} {name!r} was removed: "
                                       f"{self._retired[name]}") from None
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str, extra_choices: list[str] | None = None) -> str:
        """The one-line message for an unknown ``name``."""
        choices = self.names() + (extra_choices or [])
        message = f"unknown {self.kind} {name!r}{suggest(name, choices)}"
        if len(choices) <= 12:
            message += f" (choices: {', '.join(choices)})"
        if self.hint:
            message += f" ({self.hint})"
        return message

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
