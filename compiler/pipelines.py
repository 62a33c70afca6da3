"""Named pipelines that targets and users build on."""

# Target-independent clean-up: after it the graph holds no Identity/Dropout, no
# foldable constant arithmetic, no BatchNormalization after a Conv/Gemm, clamps
# fused into their producers and channels-last spatial ops with no transposes
# left between them.
CANONICAL = ("remove-identity,canonicalize,fold-constants,fold-batchnorm,"
             "fuse-activation,layout,canonicalize")
