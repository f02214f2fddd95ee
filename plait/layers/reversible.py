"""Reversible layers (issue 3): filled in by the reversible work."""
__all__ = []
