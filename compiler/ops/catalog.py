"""Which module of nnc.ops defines each op and each ONNX lowering.

The registry (registry.py) imports a module on the first lookup of a name it
lists here, so a compile loads only the op modules its graph uses. Invariant,
checked by tests/ops/test_catalog.py: importing every module listed registers
exactly these names, each from the module listed. Adding an op adds its name to
its module's entry below.
"""

# module -> the IR ops it registers with @register_op (space-separated)
OP_MODULES: dict[str, str] = {
    "elementwise": "Add Sub Mul Div Relu LeakyRelu ThresholdedRelu Elu Selu PRelu Where Clip Sigmoid Tanh "
                   "HardSigmoid HardSwish",
    "shape": "Reshape Transpose Concat Pad Identity Dropout",
    "quantize": "QuantizeLinear DequantizeLinear",
    "softmax": "Softmax LogSoftmax",
    "conv": "Conv ConvTranspose",
    "gemm": "Gemm MatMul",
    "normalization": "BatchNormalization InstanceNormalization",
    "pool": "MaxPool AveragePool GlobalAveragePool GlobalMaxPool",
    "qlinear": "QConv QGemm",
    "qelementwise": "Requantize QAdd QLut",
    "qpool": "QAveragePool",
    "qrecurrent": "QLSTM QGRU QRNN",
    "qsoftmax": "QSoftmax QLogSoftmax",
    "qresize": "ResizeNearest QResize",
    "resize": "Resize",
    "layernorm": "LayerNormalization QLayerNorm",
    "qbinary": "QMul QAffine",
    "qmatmul": "QMatMul",
    "reduce": "ReduceSum ReduceMean ReduceMax ReduceL1 ReduceL2 ReduceSumSquare QReduce",
    "recurrent": "LSTM GRU RNN",
    "indexing": "Gather GatherND Slice Split",
    "replicate": "Expand Tile Cast",
    "math_unary": "Erf Sqrt Exp Log Softplus Softsign Mish Neg Abs Reciprocal Sign Sin Cos Silu Gelu Pow",
    "compare": "Greater Less GreaterOrEqual LessOrEqual Equal",
    "cumsum": "CumSum",
    "depth_space": "DepthToSpace SpaceToDepth",
    "einsum": "Einsum",
}

# module -> the ONNX ops it lowers with @lowers
LOWERING_MODULES: dict[str, str] = {
    "elementwise": "Add Sub Mul Div Where Relu Sigmoid Tanh HardSwish PRelu LeakyRelu ThresholdedRelu Elu Selu "
                   "HardSigmoid Clip",
    "shape": "Reshape Flatten Squeeze Unsqueeze Transpose Concat Pad Identity Dropout",
    "quantize": "QuantizeLinear DequantizeLinear",
    "softmax": "Softmax LogSoftmax",
    "conv": "Conv ConvTranspose",
    "gemm": "Gemm MatMul",
    "normalization": "BatchNormalization InstanceNormalization",
    "pool": "MaxPool AveragePool GlobalAveragePool GlobalMaxPool",
    "resize": "Resize",
    "layernorm": "LayerNormalization",
    "reduce": "ReduceSum ReduceMean ReduceMax ReduceL1 ReduceL2 ReduceSumSquare",
    "recurrent": "LSTM GRU RNN",
    "indexing": "Gather GatherND Slice Split",
    "replicate": "Expand Tile Cast",
    "math_unary": "Erf Sqrt Exp Log Neg Abs Reciprocal Sign Sin Cos Softplus Softsign Mish Swish Gelu Pow",
    "compare": "Greater Less GreaterOrEqual LessOrEqual Equal",
    "cumsum": "CumSum",
    "depth_space": "DepthToSpace SpaceToDepth",
    "einsum": "Einsum",
}
