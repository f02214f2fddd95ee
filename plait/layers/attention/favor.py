"""FAVOR+ attention (Performer): placeholder until the FAVOR+ work lands."""
__all__ = []
