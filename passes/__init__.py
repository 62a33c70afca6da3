"""The transformation passes, one module each. Importing this package registers
every pass with the pass manager (see nnc.passmanager)."""

from . import canonicalize  # noqa: F401
from . import expose_states  # noqa: F401
from . import fold_batchnorm  # noqa: F401
from . import fold_constants  # noqa: F401
from . import fuse_activation  # noqa: F401
from . import fuse_bias  # noqa: F401
from . import layout  # noqa: F401
from . import prune  # noqa: F401
from . import prune_channels  # noqa: F401
from . import quantize  # noqa: F401
from . import remove_identity  # noqa: F401
