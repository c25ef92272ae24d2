"""The shapes of the custom resources the chart renders, as JSON Schemas of our own.

kubernetes-validate knows only Kubernetes' own kinds, so ServiceMonitor and PrometheusRule
(Prometheus Operator) and ScaledObject and TriggerAuthentication (KEDA) are checked against
these: the fields the chart uses, with their types, required where the CRD requires them,
and unknown fields refused (a misspelt field would be dropped or rejected by the cluster).
Written from the projects' documentation of these fields; not their full CRDs.
"""

from __future__ import annotations

from typing import Any

_DURATION = {"type": "string", "pattern": r"^([0-9]+(ms|s|m|h|d|w|y))+$"}
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_NAME = {"type": "string", "minLength": 1, "maxLength": 253}


def _obj(props: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "required": required or [],
    }


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _obj(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _obj(
                {"name": _NAME, "labels": _STRING_MAP, "annotations": _STRING_MAP}, ["name"]
            ),
            "spec": spec,
        },
        ["apiVersion", "kind", "metadata", "spec"],
    )


SERVICE_MONITOR = _resource(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    _obj(
        {
            "selector": _obj({"matchLabels": _STRING_MAP}, ["matchLabels"]),
            "namespaceSelector": _obj(
                {"matchNames": {"type": "array", "items": _NAME, "minItems": 1}}
            ),
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "port": _NAME,
                        "path": {"type": "string", "pattern": "^/"},
                        "interval": _DURATION,
                        "scrapeTimeout": _DURATION,
                        "relabelings": {
                            "type": "array",
                            "items": _obj(
                                {
                                    "action": {
                                        "enum": [
                                            "replace",
                                            "keep",
                                            "drop",
                                            "labeldrop",
                                            "labelkeep",
                                            "labelmap",
                                        ]
                                    },
                                    "regex": {"type": "string"},
                                    "sourceLabels": {"type": "array", "items": {"type": "string"}},
                                    "targetLabel": {"type": "string"},
                                    "replacement": {"type": "string"},
                                },
                                ["action"],
                            ),
                        },
                    },
                    ["port"],
                ),
            },
        },
        ["selector", "endpoints"],
    ),
)

PROMETHEUS_RULE = _resource(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    _obj(
        {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "name": _NAME,
                        "interval": _DURATION,
                        "rules": {
                            "type": "array",
                            "minItems": 1,
                            "items": _obj(
                                {
                                    "alert": {
                                        "type": "string",
                                        "pattern": "^[A-Za-z][A-Za-z0-9]*$",
                                    },
                                    "expr": {"type": "string", "minLength": 1},
                                    "for": _DURATION,
                                    "labels": _STRING_MAP,
                                    "annotations": _STRING_MAP,
                                },
                                ["alert", "expr"],
                            ),
                        },
                    },
                    ["name", "rules"],
                ),
            }
        },
        ["groups"],
    ),
)

SCALED_OBJECT = _resource(
    "keda.sh/v1alpha1",
    "ScaledObject",
    _obj(
        {
            "scaleTargetRef": _obj(
                {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "name": _NAME},
                ["name"],
            ),
            "minReplicaCount": {"type": "integer", "minimum": 0},
            "maxReplicaCount": {"type": "integer", "minimum": 1},
            "pollingInterval": {"type": "integer", "minimum": 1},
            "cooldownPeriod": {"type": "integer", "minimum": 0},
            "advanced": _obj(
                {
                    "horizontalPodAutoscalerConfig": _obj(
                        {
                            "behavior": _obj(
                                {
                                    "scaleDown": _obj(
                                        {"stabilizationWindowSeconds": {"type": "integer"}}
                                    )
                                }
                            )
                        }
                    )
                }
            ),
            "triggers": {
                "type": "array",
                "minItems": 1,
                "items": _obj(
                    {
                        "type": {"type": "string", "minLength": 1},
                        # KEDA reads every metadata value as a string: a bare number is refused.
                        "metadata": _STRING_MAP,
                        "authenticationRef": _obj({"name": _NAME}, ["name"]),
                    },
                    ["type", "metadata"],
                ),
            },
        },
        ["scaleTargetRef", "triggers"],
    ),
)

TRIGGER_AUTHENTICATION = _resource(
    "keda.sh/v1alpha1",
    "TriggerAuthentication",
    _obj(
        {
            "env": {
                "type": "array",
                "items": _obj(
                    {"parameter": _NAME, "name": _NAME, "containerName": _NAME},
                    ["parameter", "name"],
                ),
            },
            "secretTargetRef": {
                "type": "array",
                "items": _obj(
                    {"parameter": _NAME, "name": _NAME, "key": _NAME}, ["parameter", "name", "key"]
                ),
            },
        }
    ),
)

CRD_SHAPES: dict[str, dict[str, Any]] = {
    "ServiceMonitor": SERVICE_MONITOR,
    "PrometheusRule": PROMETHEUS_RULE,
    "ScaledObject": SCALED_OBJECT,
    "TriggerAuthentication": TRIGGER_AUTHENTICATION,
}
"""Kind to shape, for every kind the chart renders that Kubernetes itself does not define."""
