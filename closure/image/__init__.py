"""The assembler: a Closure becomes a deterministic OCI image, archive or rootfs."""
from .writer import FORMATS, BuildResult, ImageOptions, check_request, infer_format, write_image

__all__ = ["FORMATS", "BuildResult", "ImageOptions", "check_request", "infer_format", "write_image"]
