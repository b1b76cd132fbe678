"""Linear inverses: eLORETA weight fit, MNE/dSPM/sLORETA kernels, the fused apply step."""

from .kernels import compute_kernel, eloreta_weights, whitener
from .operator import InverseOperator, make_inverse

__all__ = ["InverseOperator", "compute_kernel", "eloreta_weights", "make_inverse", "whitener"]
