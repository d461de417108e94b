"""The assembler: a Closure becomes a deterministic OCI image, archive or rootfs."""
from .writer import FORMATS, BuildResult, ImageOptions, infer_format, write_image

__all__ = ["FORMATS", "BuildResult", "ImageOptions", "infer_format", "write_image"]
