"""Kinds that register themselves: a student kind or a teacher backend is one file that declares its name, its
settings block and its class (`@STUDENT_KINDS.register("ngram", NgramSettings)`). The family's settings are a
tagged union on one field (`kind`, `backend`), so a key that belongs to another kind is refused by name.

A family lists its kinds by importing every module of the packages that hold them (`discover`), so a new kind
is a new file there and nothing else.
"""
from __future__ import annotations

import importlib
import pkgutil
from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag, TypeAdapter



class KindFamily:
    def __init__(self, family: str, tag: str, default: str, packages: tuple[str, ...]):
        self.family, self.tag, self.default, self.packages = family, tag, default, packages
        self._settings: dict[str, type] = {}
        self._classes: dict[str, type] = {}
        self._discovered = self._discovering = False

    def register(self, name: str, settings: type):
        """Class decorator: `name` is implemented by the class and configured by `settings`, whose `tag` field
        must be Literal[name]."""
        def decorate(cls):
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.family} '{name}' registered twice ({self._classes[name]} and {cls})")
            self._settings[name], self._classes[name] = settings, cls
            cls.kind_name = name
            return cls
        return decorate

    def discover(self) -> None:
        """Import every module of the kind packages once: each registers what it defines."""
        if self._discovered or self._discovering:
            return
        self._discovering = True  # a kind module that asks again while it imports gets what is registered so far
        try:
            for package_name in self.packages:
                package = importlib.import_module(package_name)
                for module in pkgutil.iter_modules(package.__path__):
                    importlib.import_module(f"{package_name}.{module.name}")
        finally:
            self._discovering = False
        self._discovered = True  # only now: a module that failed to import raises its own error again next time

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._classes)

    def implementation(self, name: str) -> type:
        self.discover()
        if name not in self._classes:
            raise ValueError(f"unknown {self.family} '{name}' (known: {self.names()})")
        return self._classes[name]

    def settings(self, name: str) -> type:
        self.implementation(name)
        return self._settings[name]

    def owners(self, field: str) -> list[str]:
        """The kinds whose settings block has this field (to say where a misplaced key belongs)."""
        return [name for name in self.names() if field in self._settings[name].model_fields]

    def _which(self, value: Any) -> str:
        if isinstance(value, dict):
            return str(value.get(self.tag, self.default))
        return str(getattr(value, self.tag, self.default))

    def union(self):
        """The settings type of the family: one of the registered blocks, chosen by the tag field."""
        self.discover()
        # an error inside a member is located at 'kind=ngram' (pgkd/config.py turns that into words)
        members = tuple(Annotated[self._settings[name], Tag(f"{self.tag}={name}")] for name in sorted(self._settings))
        return Annotated[Union[members], Discriminator(lambda v: f"{self.tag}={self._which(v)}",
                                                       custom_error_type="unknown_kind",
                                                       custom_error_context={"tag": self.tag},
                                                       custom_error_message=f"unknown {self.family}; known: "
                                                                            f"{', '.join(self.names())}")]

    def parse(self, data: dict):
        """Validate a block of this family from plain data (an actor receives its settings as JSON)."""
        return TypeAdapter(self.union()).validate_python(data)

    def default_settings(self):
        return self.settings(self.default)()
