"""signgate: a policy-gated signing workflow engine on Temporal and Dfns."""

__version__ = "0.1.0"
