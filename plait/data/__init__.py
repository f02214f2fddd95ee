"""plait.data."""
