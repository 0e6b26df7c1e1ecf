"""This release's version (CHANGELOG.md; tagged vX.Y.Z in git)."""

__version__ = "0.27.0"
