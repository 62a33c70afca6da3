"""All IR ops. Importing this package registers every op and ONNX lowering;
each module below adds its ops with `@register_op` and `@lowers`."""

from . import elementwise  # noqa: F401
from . import quantize, shape, softmax  # noqa: F401
from . import conv, gemm, normalization, pool  # noqa: F401
from . import qelementwise, qlinear, qpool, qsoftmax  # noqa: F401
from . import qresize, resize  # noqa: F401
from . import layernorm, qmatmul, reduce  # noqa: F401
from . import recurrent  # noqa: F401
from . import indexing, replicate  # noqa: F401
from . import math_unary, qbinary  # noqa: F401
from . import compare, cumsum, depth_space, einsum  # noqa: F401
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
