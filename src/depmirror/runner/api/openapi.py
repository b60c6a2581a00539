"""The API's OpenAPI 3 document, served at /api/v1/openapi.json and committed as docs/openapi.json (a test
keeps the two equal and walks every path against the running runner)."""

from __future__ import annotations

from typing import Any

from depmirror import __version__

_ERROR = {"$ref": "#/components/responses/Error"}
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _secured(scope: str, operation: dict[str, Any]) -> dict[str, Any]:
    operation["security"] = [{"bearer": []}]
    operation["x-depmirror-scope"] = scope
    operation["responses"].update({"401": _ERROR, "403": _ERROR})
    return operation


def document() -> dict[str, Any]:
    override = {"$ref": "#/components/schemas/Override"}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "depmirror runner API",
            "version": __version__,
            "description": "Dependencies, run-time policy (overrides), switchovers and history statistics. "
            "Bearer tokens with scopes read < operate < admin (docs/runner.md, API).",
        },
        "paths": {
            "/api/v1/openapi.json": {
                "get": _secured("read", {"summary": "This document", "responses": {"200": _json({}, "OpenAPI 3")}})
            },
            "/api/v1/events": {
                "get": _secured(
                    "read",
                    {
                        "summary": "History events, newest first (as `depmirror history --format json`)",
                        "parameters": [
                            {"name": n, "in": "query", "schema": {"type": t}}
                            for n, t in (
                                ("dependency", "string"),
                                ("kind", "string"),
                                ("since", "string"),
                                ("limit", "integer"),
                            )
                        ],
                        "responses": {"200": _json({"type": "object"}, "events"), "400": _ERROR},
                    },
                )
            },
            "/api/v1/dependencies": {
                "get": _secured(
                    "read",
                    {
                        "summary": "Every dependency: primary, RF, mode, rollback mode in force, override ids",
                        "responses": {
                            "200": _json(
                                {
                                    "type": "object",
                                    "properties": {
                                        "dependencies": {
                                            "type": "array",
                                            "items": {"$ref": "#/components/schemas/DependencySummary"},
                                        }
                                    },
                                },
                                "dependencies",
                            )
                        },
                    },
                )
            },
            "/api/v1/dependencies/{name}": {
                "parameters": [_NAME],
                "get": _secured(
                    "read",
                    {
                        "summary": "One dependency: applied plan, primary, live health, active overrides",
                        "responses": {"200": _json({"$ref": "#/components/schemas/Dependency"}, "it"), "404": _ERROR},
                    },
                ),
            },
            "/api/v1/dependencies/{name}/policy": {
                "parameters": [_NAME],
                "put": _secured(
                    "admin",
                    {
                        "summary": "Set an override (replaces the dependency's one in force); name `*` for all",
                        "requestBody": {
                            "required": True,
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/OverrideRequest"}}
                            },
                        },
                        "responses": {
                            "200": _json({"type": "object", "properties": {"override": override}}, "stored"),
                            "400": _ERROR,
                            "404": _ERROR,
                        },
                    },
                ),
                "delete": _secured(
                    "admin",
                    {
                        "summary": "End the dependency's override in force",
                        "requestBody": {
                            "required": False,
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"reason": {"type": "string", "maxLength": 500}},
                                        "additionalProperties": False,
                                    }
                                }
                            },
                        },
                        "responses": {
                            "200": _json({"type": "object", "properties": {"override": override}}, "ended"),
                            "400": _ERROR,
                            "404": _ERROR,
                        },
                    },
                ),
            },
            "/api/v1/dependencies/{name}/switchover": {
                "parameters": [_NAME],
                "post": _secured(
                    "operate",
                    {
                        "summary": "Switch the primary to a healthy mirror (queued like an alert), or rehearse it",
                        "requestBody": {
                            "required": True,
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["dry_run"],
                                        "properties": {
                                            "dry_run": {"type": "boolean"},
                                            "target": {"type": "string", "description": "HOST or DEPENDENCY@HOST"},
                                        },
                                        "additionalProperties": False,
                                    }
                                }
                            },
                        },
                        "responses": {
                            "200": _json({"$ref": "#/components/schemas/Decision"}, "dry run: the decision"),
                            "202": _json({"$ref": "#/components/schemas/Decision"}, "queued"),
                            "400": _ERROR,
                            "404": _ERROR,
                            "409": _json({"$ref": "#/components/schemas/Decision"}, "refused: nothing queued"),
                        },
                    },
                ),
            },
            "/api/v1/history/stats": {
                "get": _secured(
                    "read",
                    {
                        "summary": "History statistics (as `depmirror history stats --format json`)",
                        "parameters": [
                            {"name": "since", "in": "query", "schema": {"type": "string", "default": "30d"}},
                            {
                                "name": "by",
                                "in": "query",
                                "schema": {"type": "string", "enum": ["dependency", "zone", "vm"]},
                            },
                        ],
                        "responses": {"200": _json({"type": "object"}, "statistics"), "400": _ERROR},
                    },
                )
            },
            "/api/v1/targets": {
                "get": _secured(
                    "read",
                    {
                        "summary": "Probe targets of what runs now, for Prometheus `http_sd_configs`",
                        "responses": {
                            "200": _json(
                                {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["targets", "labels"],
                                        "properties": {
                                            "targets": {"type": "array", "items": {"type": "string"}},
                                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                        },
                                    },
                                },
                                "target groups: dependency, kind, host, zone, role, instance",
                            ),
                            "409": _ERROR,
                        },
                    },
                )
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": _json(
                    {
                        "type": "object",
                        "required": ["error"],
                        "properties": {"error": {"type": "string"}, "field": {"type": "string"}},
                    },
                    "what is wrong; `field` names the input at fault",
                )
            },
            "schemas": {
                "OverrideRequest": {
                    "type": "object",
                    "required": ["expires_in", "reason"],
                    "additionalProperties": False,
                    "properties": {
                        "rf_min": {"type": "integer", "minimum": 1, "maximum": 64},
                        "rf_max": {"type": "integer", "minimum": 1, "maximum": 64},
                        "unhealthy": {"type": "number", "minimum": 0, "maximum": 1},
                        "rollback": {"type": "string", "enum": ["auto", "manual", "shadow", "frozen"]},
                        "expires_in": {"type": "string", "example": "2h", "description": "at most 30d"},
                        "reason": {"type": "string", "maxLength": 500},
                    },
                },
                "Override": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "dependency": {"type": "string"},
                        "rf_min": {"type": "integer", "nullable": True},
                        "rf_max": {"type": "integer", "nullable": True},
                        "unhealthy": {"type": "number", "nullable": True},
                        "rollback": {"type": "string", "nullable": True},
                        "reason": {"type": "string"},
                        "created_by": {"type": "string"},
                        "created_ts": {"type": "string", "format": "date-time"},
                        "expires_ts": {"type": "string", "format": "date-time"},
                        "ended_ts": {"type": "string", "format": "date-time", "nullable": True},
                        "end_reason": {"type": "string", "nullable": True},
                    },
                },
                "DependencySummary": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "primary": {"type": "string", "nullable": True},
                        "replication_factor": {"type": "integer", "nullable": True},
                        "mode": {"type": "string", "nullable": True},
                        "instances": {"type": "array", "items": {"type": "string"}},
                        "rollback": {"type": "string"},
                        "overrides": {"type": "array", "items": {"type": "integer"}},
                    },
                },
                "Dependency": {
                    "allOf": [
                        {"$ref": "#/components/schemas/DependencySummary"},
                        {
                            "type": "object",
                            "properties": {
                                "plan": {"type": "object", "nullable": True},
                                "health": {"type": "object"},
                                "active_overrides": {"type": "array", "items": override},
                                "effective": {"type": "object"},
                            },
                        },
                    ]
                },
                "Decision": {
                    "type": "object",
                    "properties": {
                        "dependency": {"type": "string"},
                        "instance": {"type": "string"},
                        "requested_target": {"type": "string", "nullable": True},
                        "dry_run": {"type": "boolean"},
                        "decision": {"type": "string", "enum": ["act", "refuse"]},
                        "candidates": {"type": "array", "items": {"type": "string"}},
                        "reason": {"type": "string"},
                        "health": {"type": "object"},
                        "queued": {"type": "boolean"},
                        "fingerprint": {"type": "string"},
                    },
                },
            },
        },
    }
