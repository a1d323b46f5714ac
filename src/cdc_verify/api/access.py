"""What a request must bring: the bearer token (when one is set) and only the query
parameters its route takes, each once. `create_app` installs both."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

BEARER = HTTPBearer(auto_error=False, description="the worker's CDC_VERIFY_HTTP_TOKEN")


class BearerToken:
    """A dependency that lets a request through only with the configured token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def __call__(
        self, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
    ) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if not secrets.compare_digest(given, self._token):
            raise HTTPException(
                401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )


async def strict_query(request: Request) -> None:
    """A mistyped parameter (`?sinse=10m`) must not silently widen a query, nor may a
    repeated one (`?entity_id=a&entity_id=b`) silently mean its last value.

    Every query parameter here takes one value, as the OpenAPI document declares.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = {p.alias for p in dependant.query_params} if dependant else set()
    query = request.query_params
    unknown = sorted(set(query) - known)
    repeated = sorted(name for name in set(query) & known if len(query.getlist(name)) > 1)
    if unknown or repeated:
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", name),
                 "msg": "unknown query parameter", "input": query[name]}
                for name in unknown
            ] + [
                {"type": "multiple_values", "loc": ("query", name),
                 "msg": "repeated query parameter: give it once", "input": query.getlist(name)}
                for name in repeated
            ]
        )  # fmt: skip
