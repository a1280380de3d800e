"""What one API request does, with no web framework in sight: decode the upload
from memory, read its hints, colorize, encode a PNG.

Keeping this apart from the routes (app.py) lets the rules be tested and read
on their own: which mistake is whose (a non-image is 400, too many pixels 413,
bad hints 422), and that one model call runs at a time (``_model_lock``: the
worker threads share one loaded model; decoding, the gamut fit and encoding,
most of a request's time, still run in parallel). An image is decoded in the
type it is stored in and colorized a tile at a time (``colorkit.colorize``), so
a request holds at most ``colorize.BYTES_PER_PIXEL`` bytes per pixel of its image.
"""

from __future__ import annotations

import io
import threading
from pathlib import Path

import keras
import numpy as np

from colorkit import batch, colorize, hints as hint_tools
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
        """One small colour image through the whole request at start-up (made gray,
        colorized, fitted into the gamut), so that the first user does not wait for
        those graphs to be built."""
        colours = np.linspace(0.0, 1.0, 8 * 8 * 3, dtype=np.float32).reshape(8, 8, 3)
        self.colorize_upload(batch.encode_image(colours, None, "PNG"))

    def describe(self) -> dict:
        """What ``GET /api/models`` says about the model: the page offers hints only when it takes them."""
        return {
            "name": self.colorizer.name,
            "source": self.source,
            "takes_hints": hint_tools.takes_hints(self.colorizer),
            "takes_global_hints": hint_tools.takes_global_hints(self.colorizer),
            "working_size": list(self.size),
        }

    def check_hints(self, hints_text) -> list:
        """The hint list of a request, after the checks that cost nothing: a JSON
        list of at most ``MAX_HINTS``, and none at all for a model that takes none
        (422 otherwise). Made before the request waits for a worker; each hint is
        checked against the image later, once its size is known."""
        try:
            entries = hint_tools.read_hint_list(hints_text or None)
        except ColorkitError as error:
            raise RequestError(422, str(error)) from None
        if entries and not hint_tools.takes_hints(self.colorizer):
            raise RequestError(422, f"{self.colorizer.name} takes no hints; send the image without hints")
        return entries

    def colorize_upload(self, data: bytes, hints=None) -> bytes:
        """The colorized PNG of an uploaded image (its bytes), alpha kept; ``hints``:
        JSON text or the list ``check_hints`` returned. Raises ``RequestError``."""
        stored = self._decode(data)
        hints = self._hints(hints, *stored.size)
        item = colorize.prepare(self.colorizer, stored.pixels, self.size, hints)
        alpha = stored.alpha
        del stored  # the pixels: from here on the image is its L
        with self._model_lock:
            ab_norm = colorize.predict_ab(self.colorizer, item.feed)[0]
        png = io.BytesIO()
        batch.save_picture(batch.paint(item.l_full, ab_norm, alpha), png, "PNG")
        return png.getvalue()

    def _decode(self, data: bytes) -> decode.Stored:
        """Decode by content (the file name and declared type are never looked at)."""
        try:
            return decode.load_stored_bytes(data, self.max_pixels, name="the uploaded file")
        except decode.ImageTooLarge as error:
            raise RequestError(413, str(error)) from None
        except ColorkitError as error:
            raise RequestError(400, str(error)) from None

    def _hints(self, hints, height: int, width: int) -> list:
        """Validated hints for this image; malformed ones, or any for a model without hint inputs, are 422."""
        try:
            parsed = hint_tools.parse_hints(hints or None, height, width)
        except ColorkitError as error:
            raise RequestError(422, str(error)) from None
        if parsed and not hint_tools.takes_hints(self.colorizer):
            raise RequestError(422, f"{self.colorizer.name} takes no hints; send the image without hints")
        return parsed
