"""Executions on Temporal, one concern a module; the routes call the part they need (built
per request in api/server/deps.py), and each part applies the key's scope (404 outside it)
and role (403) to every object it touches.

- ``starting``: :class:`Starter`, the one check every way to a run passes (``runnable``) and
  the start itself; ``inputs`` (the one input check of a run request), ``options`` (what
  Temporal is given), ``idempotency`` (which execution a start names);
- ``reading``: :class:`Reader`, the status (the worker's view, or Temporal's alone), ``wait``
  and the log;
- ``listing``: :class:`Lister`, a page of visibility; ``page_tokens``: its signed tokens;
- ``control``: :class:`Controller`, cancel and signals;
- ``reruns``: :class:`Rerunner`, a rerun of a finished execution;
- ``common``: statuses, links, and the answers every part gives.
"""

from api.server.errors import DuplicateStart
from api.server.executions.common import STATUSES
from api.server.executions.control import Controller
from api.server.executions.idempotency import request_hash
from api.server.executions.listing import Lister
from api.server.executions.options import StartOptions, execution_limits, start_options
from api.server.executions.page_tokens import PageTokens, page_token_secret
from api.server.executions.reading import Reader
from api.server.executions.reruns import Rerunner
from api.server.executions.starting import Starter

__all__ = [
    "STATUSES",
    "Controller",
    "DuplicateStart",
    "Lister",
    "PageTokens",
    "Reader",
    "Rerunner",
    "StartOptions",
    "Starter",
    "execution_limits",
    "page_token_secret",
    "request_hash",
    "start_options",
]
