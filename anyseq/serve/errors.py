"""OpenAI-style errors: every failure is `{"error": {"message", "type", "code", "param"}}`.

Clients written for the OpenAI API (the official `openai` package among them) read this
shape to raise `BadRequestError`, `RateLimitError` and the rest, so bad input, unknown
routes, validation failures and rate limiting all answer with it and a 4xx status;
only a bug in the server answers 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

# status -> the OpenAI error type clients expect with it
ERROR_TYPES = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    503: "server_error",
}


class ApiError(Exception):
    """A request that cannot be served; `message` names the input and the limit."""

    def __init__(self, status: int, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param


def error_body(status: int, message: str, code: str, param: str | None = None) -> dict:
    return {
        "error": {
            "message": message,
            "type": ERROR_TYPES.get(status, "invalid_request_error"),
            "code": code,
            "param": param,
        }
    }


def error_response(error: ApiError) -> JSONResponse:
    headers = {"Retry-After": "1"} if error.status == 429 else None
    return JSONResponse(
        error_body(error.status, error.message, error.code, error.param), error.status, headers=headers
    )


def _location(loc: tuple) -> str:
    """('body', 'messages', 0, 'content') -> 'messages[0].content'."""
    text = ""
    for item in loc[1:] if loc and loc[0] == "body" else loc:
        text += f"[{item}]" if isinstance(item, int) else f".{item}" if text else str(item)
    return text


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        first = problems[0] if problems else {"loc": (), "msg": "invalid request"}
        param = _location(tuple(first.get("loc", ())))
        message = "; ".join(f"{_location(tuple(p.get('loc', ())))}: {p.get('msg')}" for p in problems[:5])
        if len(problems) > 5:
            message += f"; and {len(problems) - 5} more"
        return error_response(ApiError(400, message or "invalid request", "invalid_request", param or None))

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        code = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}.get(
            error.status_code, "http_error"
        )
        return error_response(ApiError(error.status_code, str(error.detail), code))

    @app.exception_handler(Exception)
    async def crash(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(ApiError(500, f"internal error: {type(error).__name__}", "server_error"))
