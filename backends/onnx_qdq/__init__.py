"""Target `onnx`: the compiled model as standard QDQ ONNX (target.py); the
writer (writer.py) with one function per IR op (ops_nn.py, ops_elementwise.py,
ops_data.py, ops_recurrent.py); the integer form (`--onnx-form integer`, integer_writer.py) with
one function per integer op (integer_layers.py, integer_elementwise.py,
integer_resize.py, integer_layernorm.py, integer_recurrent.py,
integer_boundary.py)."""

from . import integer_boundary, integer_elementwise, integer_layernorm, integer_layers  # noqa: F401  (integer form)
from . import integer_recurrent, integer_resize  # noqa: F401  (integer form)
from . import ops_data, ops_elementwise, ops_nn, ops_recurrent  # noqa: F401  (register the writers)
from . import target  # noqa: F401  (registers the target)
