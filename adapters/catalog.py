"""Collects the built-in model families; each family module registers its own entries."""

from bench.adapters.classical import models as _classical  # noqa: F401
from bench.adapters.clickseg import models as _clickseg  # noqa: F401
from bench.adapters.ritm import models as _ritm  # noqa: F401
from bench.adapters.sam import models as _sam  # noqa: F401
from bench.adapters.simpleclick import models as _simpleclick  # noqa: F401
