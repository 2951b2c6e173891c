"""Exceptions of the feature store."""
from __future__ import annotations

__all__ = ['FeatureStoreError', 'UnknownVideoError']


class FeatureStoreError(Exception):
    """A feature store (or part file) is missing, unreadable, inconsistent or incompatible; the message names it."""


class UnknownVideoError(FeatureStoreError, KeyError):
    """A video id is not in a store. Also a ``KeyError``, so ``except KeyError`` works as for a dict."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])
