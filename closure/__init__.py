"""closure: container images holding exactly what one program needs."""
__version__ = "0.1.0"
