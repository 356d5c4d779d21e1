"""Image codecs for frames stored inside episodes: JPEG (simplejpeg / libjpeg-turbo), PNG (OpenCV),
16-bit PNG for depth in millimetres."""

from __future__ import annotations

import cv2
import numpy as np
import simplejpeg


def encode_rgb(img: np.ndarray, encoding: str, quality: int = 90) -> bytes:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an RGB image uint8 (H, W, 3), got {img.dtype} {img.shape}")
    if encoding == "jpeg":
        return simplejpeg.encode_jpeg(np.ascontiguousarray(img), quality=quality, colorspace="RGB")
    if encoding == "png":
        ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        if not ok:
            raise ValueError("PNG encoding failed")
        return buf.tobytes()
    raise ValueError(f"unknown image encoding {encoding!r}; expected jpeg or png")


def decode_rgb(buf: bytes | np.ndarray, encoding: str, fast: bool = True) -> np.ndarray:
    """Decode to (H, W, 3) uint8 RGB. `fast` uses libjpeg-turbo's fast DCT and upsampling."""
    if encoding == "jpeg":
        return simplejpeg.decode_jpeg(buf, colorspace="RGB", fastdct=fast, fastupsample=fast)
    if encoding == "png":
        arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR)
        if arr is None:
            raise ValueError("PNG decoding failed")
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    raise ValueError(f"unknown image encoding {encoding!r}; expected jpeg or png")


def encode_depth(depth_mm: np.ndarray) -> bytes:
    """Depth as uint16 millimetres (0 = invalid) -> lossless 16-bit PNG."""
    if depth_mm.dtype != np.uint16 or depth_mm.ndim != 2:
        raise ValueError(f"expected depth uint16 (H, W) in millimetres, got {depth_mm.dtype} {depth_mm.shape}")
    ok, buf = cv2.imencode(".png", depth_mm, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("16-bit PNG encoding failed")
    return buf.tobytes()


def decode_depth(buf: bytes | np.ndarray) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16:
        raise ValueError("16-bit PNG depth decoding failed")
    return arr
