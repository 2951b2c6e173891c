"""Frame folders (SSv2's ``img_00001.jpg`` ...): the clip frames of a raw-frame video, read like a video file's."""
from __future__ import annotations

import os

import numpy as np
import torch

from .errors import VideoDecodeError

__all__ = ['read_rawframes']


def read_rawframes(folder: str | os.PathLike, indices: np.ndarray, filename_tmpl: str = 'img_{:05}.jpg',
                   start_index: int = 1) -> torch.Tensor:
    """Frames ``filename_tmpl.format(start_index + i)`` for i in ``indices`` of a frame folder: uint8 (T, H, W, 3).

    Decoded with PIL, as the official image loader does (torchvision's libpng can clash with the zlib that the video
    decoders bundle in the same process: "bad parameters to zlib").

    Raises:
        VideoDecodeError: a missing, unreadable or truncated frame file, or frames of different sizes.
    """
    from PIL import Image

    frames = []
    for i in np.asarray(indices).reshape(-1).tolist():
        name = os.path.join(folder, filename_tmpl.format(start_index + i))
        try:
            with Image.open(name) as image:
                frames.append(np.asarray(image.convert('RGB')))
        except OSError as e:  # PIL raises OSError subclasses
            raise VideoDecodeError(folder, f'frame {name!r}: {type(e).__name__}: {e}') from None
    if any(f.shape != frames[0].shape for f in frames):
        raise VideoDecodeError(folder, f'frames of different sizes: {sorted({f.shape for f in frames})}')
    return torch.from_numpy(np.stack(frames))
