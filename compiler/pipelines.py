"""Named pipelines that targets and users build on."""

# Target-independent clean-up. Afterwards the graph holds no Identity/Dropout, no
# foldable constant arithmetic, no BatchNormalization after a Conv/Gemm; biases
# and clamps are fused into their producers (MatMul + Add -> Gemm); spatial ops
# are channels-last with no transposes left between them.
CANONICAL = ("remove-identity,canonicalize,fold-constants,fold-batchnorm,"
             "fuse-bias,fuse-activation,layout,canonicalize")
