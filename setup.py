"""A shim for tools that still call setup.py; the package metadata is in pyproject.toml."""
import setuptools

setuptools.setup()
