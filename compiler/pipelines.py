"""Named pipelines that targets and users build on."""

# Target-independent clean-up. Afterwards the graph holds no Identity/Dropout, no
# foldable constant arithmetic, no BatchNormalization after a Conv/Gemm; biases
# and clamps are fused into their producers (MatMul + Add -> Gemm); spatial ops
# are channels-last with no transposes left between them.
CANONICAL = ("remove-identity,canonicalize,fold-constants,fold-batchnorm,"
             "fuse-bias,fuse-activation,layout,canonicalize")

# Passes that trade accuracy for size; the driver measures each layer's output
# error against the graph as it was before the first of them.
COMPRESSION = frozenset({"prune-channels", "prune", "quantize"})
