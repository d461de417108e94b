"""closure: container images holding exactly what one program needs."""
__version__ = "0.1.0"


def build(targets, output, **options):
    """`closure build TARGETS -o OUTPUT --OPTION...` as a call; see closure.api.build."""
    from .api import build as _build
    return _build(targets, output, **options)
