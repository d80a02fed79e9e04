"""The OpenAPI document, made to tell the truth about errors.

FastAPI documents a 422 with its own error array and nothing else; camvault answers every
error as ``{"detail": str, "field": str | null}`` (409s add context keys) with the codes
below. They are added per operation from what the operation is: authenticated →
401/503, admin or restore → 403, path parameters → 404, a body → 413, any input → 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA = "Error"
_ERROR: dict[str, Any] = {
    "title": ERROR_SCHEMA,
    "type": "object",
    "required": ["detail", "field"],
    "properties": {
        "detail": {"type": "string", "description": "what is wrong, for a person"},
        "field": {
            "anyOf": [{"type": "string"}, {"type": "null"}],
            "description": "the parameter, body field or header at fault, if any",
        },
    },
    "additionalProperties": True,  # 409 adds e.g. storage_class and how to restore
}
_DESCRIPTIONS = {
    "400": "invalid input (the field named)",
    "401": "missing, invalid, expired or revoked bearer token",
    "403": "the caller lacks the permission, or a cookie-authenticated write lacks the "
    "X-Camvault-CSRF header",
    "404": "no such resource, or not visible to the caller",
    "409": "conflicts with the resource's state (e.g. archived: restore first)",
    "413": "request body over [api] max_body_bytes",
    "422": "a parameter or body field fails validation (the field named)",
    "503": "a dependency (database, S3) is unavailable; try again later",
}
_WRITES = {"post", "put", "patch", "delete"}


def _codes(path: str, method: str, op: dict[str, Any]) -> set[str]:
    codes = {"503"}
    params = op.get("parameters", [])
    authenticated = bool(op.get("security"))
    if authenticated:
        codes |= {"400", "401"}
    if "admin" in op.get("tags", []) or "/restore" in path:
        codes.add("403")
    if method in _WRITES:
        codes.add("403")  # cookie-authenticated writes need the CSRF header (web_auth)
    if any(p.get("in") == "path" for p in params) or (authenticated and method in _WRITES):
        codes.add("404")  # writes name users/groups/cameras that may not exist
    if "requestBody" in op:
        codes |= {"413", "422"}
    if params:
        codes.add("422")
    if authenticated and (method in _WRITES or "/restore" in path):
        codes.add("409")
    return codes


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components[ERROR_SCHEMA] = _ERROR
    ref = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            responses.pop("422", None)  # FastAPI's array; replaced below when it applies
            for code in sorted(_codes(path, method, op)):
                if code in responses and code != "503":
                    continue
                if code == "503" and code in responses:
                    continue  # e.g. /healthz documents its own 503 body
                responses[code] = {
                    "description": _DESCRIPTIONS[code],
                    "content": {"application/json": {"schema": ref}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
