"""DepthToSpace (DCR and CRD) and SpaceToDepth against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from op_oracles import run_nnc, run_ort

from nnc.errors import ShapeError
from nnc.ir import TensorType
from nnc.ops import get_op
from nnc.ops.depth_space import DepthSpaceAttrs


@pytest.mark.parametrize("op, attrs, shape", [("DepthToSpace", {"blocksize": 2, "mode": "DCR"}, (1, 8, 3, 4)),
                                              ("DepthToSpace", {"blocksize": 2, "mode": "CRD"}, (2, 12, 2, 3)),
                                              ("DepthToSpace", {"blocksize": 3}, (1, 9, 2, 2)),
                                              ("SpaceToDepth", {"blocksize": 3}, (1, 2, 6, 9))])
def test_matches_onnxruntime(op, attrs, shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(run_nnc(op, [x], attrs)[0], run_ort(op, [x], attrs)[0])


def test_shapes_that_do_not_split_are_refused():
    attrs = DepthSpaceAttrs(2)
    with pytest.raises(ShapeError, match="multiple of blocksize"):
        get_op("DepthToSpace").infer(attrs, [TensorType("f32", (1, 6, 2, 2))])
    with pytest.raises(ShapeError, match="multiples of blocksize"):
        get_op("SpaceToDepth").infer(attrs, [TensorType("f32", (1, 2, 5, 4))])
