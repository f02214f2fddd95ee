"""plait.supervised."""
