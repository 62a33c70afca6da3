"""The options of the compression methods that every compile checks: the
method names and their per-layer overrides, the damping and its default, and
the warning for layers that fall back to magnitude. The methods themselves
(obs_layers.py, obs.py, hessian.py) are imported only where they run."""

from __future__ import annotations

import warnings

from .errors import NncWarning, OptionError
from .ir import Graph
from .layer_select import parse_overrides, settings

METHODS = ("magnitude", "obs")
DAMPING = 0.01  # the default damping of method obs (obs.DAMPING)


def check_method(option: str, method: str) -> str:
    if method not in METHODS:
        raise OptionError(f"{option} must be one of {', '.join(METHODS)}, got {method!r}")
    return method


def parse_methods(prefix: str, method: str, overrides: str) -> dict[str, str]:
    """The per-layer method overrides of a pass (`prefix` names it in errors),
    after checking its `method`; OptionError on any unknown method."""
    check_method(f"{prefix}: method", method)
    return parse_overrides(overrides, f"{prefix}: method_overrides", lambda text: check_method("method", text))


def method_settings(graph: Graph, prefix: str, method: str, overrides: str) -> dict[str, str]:
    """{layer name: method} of every weighted layer."""
    return settings(graph, parse_methods(prefix, method, overrides), method, f"{prefix}: method_overrides")


def check_damping(option: str, damping: float) -> None:
    if not 0.0 <= damping <= 10.0:
        raise OptionError(f"{option}: damping must be in [0, 10], got {damping}")


def fallback_warning(pass_name: str, layers: list[str], why: str) -> None:
    if layers:
        shown = ", ".join(map(repr, layers[:3])) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")
        warnings.warn(f"{pass_name}: method obs {why}; layer(s) {shown} use method magnitude", NncWarning,
                      stacklevel=3)
