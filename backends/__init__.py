"""Code generators: each target turns a compiled graph into files.

A target is a class with `name`, `default_pipeline` (a pipeline string) and
`emit(graph, out_dir) -> list[str]` (relative paths of what it wrote). Targets
register with `@register_target`; `get_target(name)` finds one.
"""

from __future__ import annotations

from nnc.errors import OptionError

_TARGETS: dict[str, type] = {}


def register_target(cls: type) -> type:
    _TARGETS[cls.name] = cls
    return cls


def get_target(name: str):
    if name not in _TARGETS:
        raise OptionError(f"unknown target {name!r}; targets: {', '.join(sorted(_TARGETS))}")
    return _TARGETS[name]()


def target_names() -> list[str]:
    return sorted(_TARGETS)


from . import ir_text  # noqa: E402,F401  (registers the target)
