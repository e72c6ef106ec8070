"""Tollgate: rolls out ML model servers as guarded, reversible canaries."""

__version__ = "0.1.0"
