"""An agent's http tool URL: the model's arguments cannot change its structure.

The model chooses ``{args.NAME}``, so a value such as ``../admin?x=1`` must stay one path
segment (or one query value), not walk up the path or add parameters. Each ``{args...}``
inside a tool's ``url`` is percent-encoded as a URI component (``quote(safe="")``: ``/``,
``?``, ``#``, ``%``, ``&``, ``=``, ``@``, ``:`` and every non-ASCII byte encoded), wherever it
stands: a path segment, a query value, the fragment, a piece of the host. A ``.`` or ``..``
segment would still be read as "this" or "the parent" directory, so a URL whose path holds one
is refused, and the call goes back to the model as the tool's error.

Only the model's arguments are encoded: a definition's own variables (``{base_url}``) keep
the `http` step's behaviour, where the author writes the URL. A URL that *begins* with an
argument (``"{args.url}"``, ``"{args.base}/items"``) is the author handing the model the whole
target: that value is used as written; the SSRF guard and the secrets' hosts still apply.
"""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from workflows.templating import Reference

ARGS = "args"  # the root the model's arguments are read under
URL_FIELD = ["url"]  # the location of the URL among the fields of a request


def encode_arguments(
    location: list[str | int], before: str, reference: Reference, text: str
) -> str:
    """The templating escape of a tool request: ``{args...}`` in the URL, percent-encoded."""
    if location != URL_FIELD or reference.root != ARGS or not before:
        return text
    return quote(text, safe="")


def dot_segment(url: str) -> str | None:
    """A ``.`` or ``..`` segment of ``url``'s path (as a server decodes it), if there is one."""
    try:
        path = urlsplit(url).path
    except ValueError:
        return None  # not a URL at all: the activity refuses it with its own message
    for segment in path.split("/"):
        if unquote(segment) in (".", ".."):
            return unquote(segment)
    return None
