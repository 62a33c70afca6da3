"""All IR ops. Each module of this package adds its ops with `@register_op`
and its ONNX lowerings with `@lowers` when imported; the registry imports a
module on the first lookup of an op it defines (catalog.py lists them), so
importing this package loads none of them.
"""

from .registry import (  # noqa: F401
    Lowered,
    NoAttrs,
    OnnxNode,
    OpDef,
    all_ops,
    attrs_dict,
    get_op,
    lowering,
    lowers,
    make_attrs,
    register_op,
    supported_onnx_ops,
)
