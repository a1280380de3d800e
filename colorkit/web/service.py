"""What one API request does, with no web framework in sight: decode the upload
from memory, read its hints, colorize, encode a PNG.

Keeping this apart from the routes (app.py) lets the rules be tested and read
on their own: which mistake is whose (a non-image is 400, too many pixels 413,
bad hints 422), and that one model call runs at a time (``_model_lock``: the
worker threads share one loaded model; decoding, the gamut fit and encoding,
most of a request's time, still run in parallel).
"""

from __future__ import annotations

import threading
from pathlib import Path

import keras
import numpy as np

from colorkit import batch, color, colorize, hints as hint_tools
from colorkit.data import decode
from colorkit.errors import ColorkitError


class RequestError(Exception):
    """A request the API refuses: an HTTP status and one sentence for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class ColorizeService:
    """One loaded model and what a request may ask of it."""

    def __init__(self, colorizer: keras.Model, source, size=None, max_pixels: int = decode.DEFAULT_MAX_PIXELS):
        self.colorizer = colorizer
        self.source = Path(str(source)).name
        self.size = colorize.resolve_size(colorizer, size)
        self.max_pixels = max_pixels
        self._model_lock = threading.Lock()
        self._warm_up()

    def _warm_up(self) -> None:
        """One call at start-up, so the first user does not wait for the graph to be built."""
        feed = hint_tools.model_feed(self.colorizer, np.zeros((1, *self.size, 1), np.float32))
        colorize.predict_ab(self.colorizer, feed)

    def describe(self) -> dict:
        """What ``GET /api/models`` says about the model: the page offers hints only when it takes them."""
        return {
            "name": self.colorizer.name,
            "source": self.source,
            "takes_hints": hint_tools.takes_hints(self.colorizer),
            "takes_global_hints": hint_tools.takes_global_hints(self.colorizer),
            "working_size": list(self.size),
        }

    def colorize_upload(self, data: bytes, hints_text=None) -> bytes:
        """The colorized PNG of an uploaded image (its bytes), alpha kept; raises ``RequestError``."""
        rgb, alpha = self._decode(data)
        hints = self._hints(hints_text, *rgb.shape[:2])
        item = colorize.prepare(self.colorizer, rgb, self.size, hints)
        with self._model_lock:
            ab_norm = colorize.predict_ab(self.colorizer, item.feed)[0]
        result = color.lab_to_rgb_in_gamut(colorize.join_ab(item.l_full, ab_norm))
        return batch.encode_image(result, alpha, "PNG")

    def _decode(self, data: bytes):
        """Decode by content (the file name and declared type are never looked at)."""
        try:
            return decode.load_image_bytes(data, self.max_pixels, name="the uploaded file")
        except decode.ImageTooLarge as error:
            raise RequestError(413, str(error)) from None
        except ColorkitError as error:
            raise RequestError(400, str(error)) from None

    def _hints(self, hints_text, height: int, width: int) -> list:
        """Validated hints for this image; malformed ones, or any for a model without hint inputs, are 422."""
        try:
            parsed = hint_tools.parse_hints(hints_text or None, height, width)
        except ColorkitError as error:
            raise RequestError(422, str(error)) from None
        if parsed and not hint_tools.takes_hints(self.colorizer):
            raise RequestError(422, f"{self.colorizer.name} takes no hints; send the image without hints")
        return parsed
