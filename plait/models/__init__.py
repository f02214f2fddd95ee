"""plait.models."""
