"""iseg-bench: reproducible benchmark harness for click-based interactive segmentation."""

__version__ = "0.1.0"
