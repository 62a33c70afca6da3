"""Target `onnx`: the compiled model as standard QDQ ONNX (target.py); the
writer (writer.py) with one function per IR op (ops_nn.py, ops_elementwise.py,
ops_data.py)."""

from . import ops_data, ops_elementwise, ops_nn  # noqa: F401  (register the writers)
from . import target  # noqa: F401  (registers the target)
