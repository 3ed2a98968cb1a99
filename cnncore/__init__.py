"""cnncore: an exact, vectorized NumPy CNN whose every forward and backward tensor is recorded."""

from .network import Network, Trace
from .spec import SpecError, normalize_spec

__version__ = "0.1.0"
__all__ = ["Network", "SpecError", "Trace", "normalize_spec", "__version__"]
