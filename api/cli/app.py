"""The `wfe` Typer app, the options every API command takes, and how failures end a command."""

from __future__ import annotations

from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

from api.cli.client import (
    API_KEY_ENV,
    API_URL_ENV,
    ApiClient,
    problem_line,
)

app = typer.Typer(help="Durable JSON workflows on Temporal.", no_args_is_help=True)
console = Console(stderr=True)


@app.callback()
def main() -> None:
    """Durable JSON workflows on Temporal."""


def fail(message: str) -> NoReturn:
    error(message)
    raise typer.Exit(1)


ApiUrl = Annotated[
    str,
    typer.Option(
        "--api-url", envvar=API_URL_ENV, show_envvar=True, help="Base URL of the engine's API."
    ),
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar=API_KEY_ENV,
        show_envvar=True,
        show_default=False,
        help="API key, sent as 'Authorization: Bearer <key>'.",
    ),
]


def error(message: str) -> None:
    """One `error:` line on stderr, never wrapped and never read as markup."""
    console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)


def warning(message: str) -> None:
    """One `warning:` line on stderr (the command still succeeds), like `error`."""
    console.print(Text.assemble(("warning:", "bold yellow"), " ", message), soft_wrap=True)


def connect(api_url: str, api_key: str | None) -> ApiClient:
    """The API client every command uses: each warning of a 2xx answer (`no_worker`,
    `not_waiting`, ...) becomes a `warning:` line on stderr, so none is ever dropped."""
    return ApiClient(api_url, api_key, warn=lambda item: warning(problem_line(item)))
