"""The HTTP API and the one web page: upload or drop an image, see it gray and
colorized side by side, click colour hints, download the result.

``create_app(model, limits)`` builds the FastAPI app (app.py: routes and
limits); service.py holds what a request does (decode from memory, hints,
colorize, encode); pool.py the bounded worker pool and upload budget;
hosts.py the Host names answered; static/ the page.
``python -m colorkit serve --run RUN_DIR`` runs it with uvicorn on 127.0.0.1.
"""

from colorkit.web.app import Limits, create_app, serve

__all__ = ["Limits", "create_app", "serve"]
