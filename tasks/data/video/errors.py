"""The one exception the video layer raises for a file it cannot use."""
from __future__ import annotations

import os
from pathlib import Path


class VideoDecodeError(RuntimeError):
    """A video file that is missing, empty, truncated, not a video, or fails while decoding.

    Every backend error (decord's ``DECORDError``, PyAV's ``av.error.*``, ``OSError`` ...) is translated into this one
    type, so a data loader can catch it, log the file and go on instead of dying with a backend stack trace.

    Attributes:
        path: the file that could not be decoded.
        reason: what is wrong with it, in words (the backend message is appended where it helps).
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f'cannot decode video {str(self.path)!r}: {reason}')

    def __reduce__(self):
        # Keep the two-argument constructor through pickling (DataLoader workers send exceptions to the main process).
        return type(self), (self.path, self.reason)
