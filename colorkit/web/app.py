"""The HTTP API and its web page (FastAPI, served by uvicorn).

Routes::

    GET  /               the page: upload or drop an image, gray | colorized, click hints, download
    POST /api/colorize   multipart form: the image in field ``file``, optional hints JSON in ``hints``
                         -> image/png of the same size (alpha kept)
    GET  /api/models     the model: name, working size, whether it takes hints; the limits
    GET  /healthz        {"status": "ok"}
    GET  /openapi.json   the OpenAPI description (FastAPI writes it from these routes)

Why FastAPI: a well-kept ASGI framework whose OpenAPI description and test
client come with it, and whose async request handling lets a full server
refuse a request at once (503) instead of queueing it in a thread.

Limits, so that no request can hurt the server: the default pixel limit keeps
``workers`` images being colorized within ``DEFAULT_IMAGE_MEMORY`` (at
``colorize.BYTES_PER_PIXEL``); a body above
``max_upload_bytes`` is refused with 413 as soon as that many bytes have
arrived (or at once, when its Content-Length says so); a body that pauses for
``idle_timeout`` seconds, or has not arrived after ``body_timeout``, is 408;
an image above ``max_pixels`` is 413 before its pixels are decoded; a file
that is not an image is 400 whatever its name or declared type; malformed
hints (or any, for a model that takes none) are 422; a full worker pool, or
uploads in flight holding their byte budget, is 503; a ``Host`` the server
was not bound as is 400 (hosts.py). The body is read before the request asks
for a worker place, so slow clients hold no place (pool.py). The upload is
held in memory and parsed there (the form parser's spool is made as large as
the capped body, so it never rolls over to a temporary file): nothing a
request sends touches the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

import colorkit
from colorkit import colorize
from colorkit.data import decode
from colorkit.errors import ColorkitError
from colorkit.web.hosts import AllowedHosts, HostCheck
from colorkit.web.pool import BoundedPool, PoolFull, UploadBudget, UploadsFull
from colorkit.web.service import ColorizeService, RequestError

STATIC = Path(__file__).parent / "static"
#: room in a request body for the hints field and the form's own framing
FORM_ALLOWANCE = 256 * 1024
#: the hints field alone (MAX_HINTS hints of about 60 bytes each fit easily)
MAX_HINTS_BYTES = 192 * 1024


#: memory that the images being colorized may take together under the default pixel
#: limit; the model, TensorFlow and the uploads waiting come on top of it
DEFAULT_IMAGE_MEMORY = 6 * 1024**3


def default_max_pixels(workers: int) -> int:
    """The largest image served by default: ``workers`` of them being colorized
    at once take at most ``DEFAULT_IMAGE_MEMORY`` (134 megapixels for 2
    workers), and none is above the decoder's own limit."""
    return min(decode.DEFAULT_MAX_PIXELS, DEFAULT_IMAGE_MEMORY // (workers * colorize.BYTES_PER_PIXEL))


@dataclass(frozen=True)
class Limits:
    """What one request may send and how many may be served at once (see the
    module docstring). ``max_pixels`` left out: ``default_max_pixels(workers)``."""

    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int | None = None
    workers: int = 2
    queue: int = 8
    body_timeout: float = 60.0  # seconds for a whole body to arrive
    idle_timeout: float = 10.0  # seconds a body may pause

    def __post_init__(self):
        for name, low in (("max_upload_bytes", 1), ("workers", 1), ("queue", 0), ("max_pixels", 1)):
            if name == "max_pixels" and self.max_pixels is None:
                object.__setattr__(self, name, default_max_pixels(self.workers))
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ColorkitError(f"{_flag(name)} must be a whole number of at least {low}, got {value!r}")
        for name in ("body_timeout", "idle_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ColorkitError(f"{_flag(name)} must be a positive number of seconds, got {value!r}")

    @property
    def max_body_bytes(self) -> int:
        return self.max_upload_bytes + FORM_ALLOWANCE

    @property
    def upload_budget_bytes(self) -> int:
        """Bytes that bodies still arriving may hold together: as many full bodies as there are places."""
        return (self.workers + self.queue) * self.max_body_bytes

    def describe(self) -> dict:
        return {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                "workers": self.workers, "queue": self.queue,
                "body_timeout_s": self.body_timeout, "idle_timeout_s": self.idle_timeout}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


UPLOAD_FORM = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary",
                         "description": "the image: JPEG, PNG (8/16-bit, gray, palette, alpha), BMP, GIF, TIFF or WebP"},
                "hints": {"type": "string",
                          "description": 'JSON list of local hints, e.g. [{"x": 120, "y": 64, "rgb": [200, 30, 40], "size": 5}]'},
            },
        }}},
    }
}
RESPONSES = {
    200: {"content": {"image/png": {}}, "description": "the colorized image, same size, 8-bit PNG"},
    400: {"description": "not an image (or an unreadable form), or a Host this server does not answer to"},
    408: {"description": "the upload paused too long, or did not arrive in time"},
    413: {"description": "upload above the size limit, or image above the pixel limit"},
    422: {"description": "no file field, or malformed hints (or any hints, for a model that takes none)"},
    503: {"description": "every worker busy and the queue full, or too many uploads arriving: retry later"},
}
#: answers sent before the whole body has arrived: the connection is closed after them,
#: so that the rest of the body is not read as a next request
_CLOSE_AFTER = {408, 413}


def _error(status: int, message: str, **headers) -> JSONResponse:
    if status in _CLOSE_AFTER:
        headers["Connection"] = "close"
    return JSONResponse({"detail": message}, status_code=status, headers=headers or None)


async def read_body(request: Request, limits: Limits, take) -> bytes:
    """The request body, refused with 413 the moment it exceeds the body limit and
    with 408 when it pauses longer than ``limits.idle_timeout`` or is not complete
    after ``limits.body_timeout``. ``take(count)`` charges each piece to the upload
    budget (``UploadBudget.account``)."""
    limit = limits.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the upload is {int(declared)} bytes; the limit is {limit}")
    clock = asyncio.get_running_loop()
    deadline = clock.time() + limits.body_timeout
    chunks, received = [], 0
    try:
        async with asyncio.timeout_at(min(deadline, clock.time() + limits.idle_timeout)) as timer:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise RequestError(413, f"the upload is larger than the limit of {limit} bytes")
                take(len(chunk))
                chunks.append(chunk)
                timer.reschedule(min(deadline, clock.time() + limits.idle_timeout))
    except TimeoutError:
        if clock.time() >= deadline:
            raise RequestError(408, f"the upload did not arrive within {limits.body_timeout:g} s; send it faster or smaller") from None
        raise RequestError(408, f"no part of the upload arrived for {limits.idle_timeout:g} s; the request is dropped") from None
    return b"".join(chunks)


async def _once(body: bytes):
    yield body


async def read_form(request: Request, body: bytes, max_upload_bytes: int) -> tuple[bytes, str | bytes | None]:
    """(image bytes, hints text (or bytes) or None) from a multipart body held in memory."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise RequestError(422, "send a multipart/form-data form with the image in field 'file'")
    parser = MultiPartParser(request.headers, _once(body), max_files=2, max_fields=4, max_part_size=MAX_HINTS_BYTES)
    parser.spool_max_size = len(body) + 1  # the whole body fits: file parts stay in memory
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise RequestError(400, f"the form cannot be read: {error.message}") from None
    upload, hints = form.get("file"), form.get("hints")
    if not isinstance(upload, UploadFile):
        raise RequestError(422, "the form needs the image as a file in field 'file'")
    data = await upload.read()
    if len(data) > max_upload_bytes:
        raise RequestError(413, f"the image is {len(data)} bytes; the limit is {max_upload_bytes}")
    if isinstance(hints, UploadFile):
        hints = await hints.read()  # bytes: the hint reader insists on UTF-8
    return data, hints


def create_app(model, limits: Limits | None = None, size=None, hosts: AllowedHosts | None = None) -> FastAPI:
    """The app for ``model``: a run folder, a ``.keras`` file or a ``keras.Model``,
    loaded once, here. ``size``: the working size of a model that takes any size.
    ``hosts``: the Host names it answers (default: those of a server on 127.0.0.1)."""
    limits = limits or Limits()
    if isinstance(model, (str, Path)):
        colorizer, source = colorize.load_colorizer(model), model
    else:
        colorizer, source = colorize.as_colorizer(model), model.name
    service = ColorizeService(colorizer, source, size, limits.max_pixels)
    pool = BoundedPool(limits.workers, limits.queue)
    budget = UploadBudget(limits.upload_budget_bytes)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        pool.shutdown()

    app = FastAPI(title="colorkit", version=colorkit.__version__, lifespan=lifespan,
                  description="Colorize gray photos with a trained colorkit model; click colour hints when it takes them.")
    app.state.service, app.state.pool, app.state.budget, app.state.limits = service, pool, budget, limits
    app.add_middleware(HostCheck, allowed=hosts or AllowedHosts.for_address("127.0.0.1"))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz")
    async def healthz():
        """Liveness: the model is loaded and the server answers."""
        return {"status": "ok"}

    @app.get("/api/models")
    async def models():
        """The model served, whether it takes hints, its working size; the request limits."""
        return {"models": [service.describe()], "limits": limits.describe()}

    @app.post("/api/colorize", response_class=Response, responses=RESPONSES, openapi_extra=UPLOAD_FORM)
    async def colorize_upload(request: Request):
        """Colorize the image in field ``file`` (hints in field ``hints``) -> PNG of the same size."""
        try:
            with budget.account() as take:
                body = await read_body(request, limits, take)
            data, hints = await read_form(request, body, limits.max_upload_bytes)
            hint_list = service.check_hints(hints)
            async with pool.place():
                png = await pool.run(service.colorize_upload, data, hint_list)
        except PoolFull:
            return _error(503, "the server is busy: every worker is taken and the queue is full; retry shortly",
                          **{"Retry-After": "1"})
        except UploadsFull:
            return _error(503, "the server is receiving too many uploads at once; retry shortly", **{"Retry-After": "1"})
        except RequestError as error:
            return _error(error.status, error.message)
        except ClientDisconnect:
            return _error(400, "the connection closed before the upload had arrived")
        return Response(png, media_type="image/png")

    return app


def bind(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (port 0: any free one), or a
    ``ColorkitError`` saying why not: a port out of range, a host name that does
    not resolve, an address in use or not this machine's, a port not permitted."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ColorkitError(f"--port must be a whole number from 0 to 65535 (0: any free port), got {port!r}")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, _, _, _, address = min(found, key=lambda info: info[0] != socket.AF_INET)  # IPv4 first when a name has both
        return socket.create_server(address, family=family)
    except OSError as error:
        raise ColorkitError(f"cannot serve on {host}:{port}: {error.strerror or error}") from None


def serve(model, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None, size=None,
          allow_hosts=()) -> None:
    """Bind ``host``:``port``, load the model, then serve the API and the page until
    Ctrl-C. The "serving" line is printed once the socket listens and the model is
    loaded; a port that cannot be bound is a ``ColorkitError`` before any loading.
    ``allow_hosts``: Host names answered besides the bound ones (hosts.py)."""
    import uvicorn

    allowed = AllowedHosts.for_address(host, allow_hosts)
    with bind(host, port) as listening:
        app = create_app(model, limits, size, hosts=allowed)
        where = f"[{host}]" if ":" in host else host
        print(f"colorkit: serving {model} on http://{where}:{listening.getsockname()[1]}/ "
              "(API description at /openapi.json; Ctrl-C stops)", flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level="info")).run(sockets=[listening])
