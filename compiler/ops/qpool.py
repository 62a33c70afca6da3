"""Integer average pooling `QAveragePool` (docs/numerics.md §5).

Every window counts the same number of positions `count` (no padding, or padding
counted as real zero); the compiler refuses other average pools for integer
targets. With M = sx / (sy · count) stored as (multiplier, shift):

    acc = Σ over the window of (x − zx)        (padding contributes 0)
    y   = clamp(zy + round_shift(acc · multiplier, shift), out_min, out_max)
"""

from __future__ import annotations


import numpy as np

from ..ir import TensorType
from ..numerics import requantize
from ..records import record
from .conv import channels_first, restore_layout, split_shape
from .pool import AveragePool, AveragePoolAttrs
from .qelementwise import to_type, check_rescale
from .registry import OpDef, register_op


@record
class QAveragePoolAttrs:
    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    channels_last: bool
    x_zero_point: int
    y_zero_point: int
    multiplier: int
    shift: int
    out_min: int
    out_max: int
    out_dtype: str = "i8"

    def geometry(self) -> AveragePoolAttrs:
        nd = len(self.kernel_shape)
        return AveragePoolAttrs(self.kernel_shape, self.strides, self.pads, (1,) * nd,
                                channels_last=self.channels_last, count_include_pad=True)


@register_op
class QAveragePool(OpDef):
    name = "QAveragePool"
    Attrs = QAveragePoolAttrs

    @staticmethod
    def infer(attrs, inputs):
        check_rescale(attrs, inputs[0])
        split_shape(inputs[0].shape, attrs.channels_last)
        (out,) = AveragePool.infer(attrs.geometry(), [TensorType("f32", inputs[0].shape)])
        return [TensorType(attrs.out_dtype, out.shape)]

    @staticmethod
    def evaluate(attrs, inputs):
        x = inputs[0]
        centred = channels_first(x, attrs.channels_last).astype(np.float64) - attrs.x_zero_point
        count = int(np.prod(attrs.kernel_shape))
        (mean,) = AveragePool.evaluate(attrs.geometry(), [restore_layout(centred, attrs.channels_last)])
        acc = np.rint(channels_first(mean, attrs.channels_last) * count).astype(np.int64)
        y = requantize(acc, attrs.multiplier, attrs.shift, attrs.y_zero_point, attrs.out_min, attrs.out_max)
        return [restore_layout(to_type(y, attrs.out_dtype), attrs.channels_last)]
