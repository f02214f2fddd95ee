"""Block-sparse attention (BigBird): placeholder until the block-sparse work lands."""
__all__ = []
