"""Figures tests measure (parity counts...), printed in the run's summary by conftest: a
test's own output is captured, and these numbers belong in every CI log."""

MEASURED: list[str] = []
