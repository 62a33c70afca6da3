"""conv.pad_spatial against np.pad: the borders only are filled, the interior copied."""

import numpy as np
import pytest

from nnc.ops.conv import pad_spatial


@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (1, 1, 1, 1), (0, 2, 1, 0), (3, 0, 0, 1)])
@pytest.mark.parametrize("order", ["C", "F", "T"])
def test_pad_spatial_equals_np_pad(pads, order):
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (2, 3, 4, 5)).astype(np.int8)
    x = np.asfortranarray(x) if order == "F" else x.transpose(0, 3, 1, 2).copy().transpose(0, 2, 3, 1) \
        if order == "T" else x
    expected = np.pad(x, [(0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])], constant_values=-7)
    padded = pad_spatial(x, pads, -7)
    assert padded.dtype == np.int8 and np.array_equal(padded, expected)
    assert padded.flags.f_contiguous == (order == "F") and not np.shares_memory(padded, x)
    widened = pad_spatial(x, pads, 3, np.float64)
    assert widened.dtype == np.float64
    assert np.array_equal(widened, np.pad(x.astype(np.float64), [(0, 0), (0, 0), (pads[0], pads[2]),
                                                                 (pads[1], pads[3])], constant_values=3))
