"""The Helm chart: its values schema, what it renders, and that Kubernetes would accept it.

Every rendered object of a Kubernetes kind is validated offline, in strict mode, against
Kubernetes 1.31's schemas (kubernetes-validate); the custom resources (KEDA, Prometheus
Operator) against the shapes in ``crds.py``. helm comes from scripts/lint-deploy.sh.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from service.policy_file import policy_from_yaml
from tests.deploy.crds import CRD_SHAPES
from tests.deploy.helm import (
    CHART,
    CI_VALUES,
    FULLNAME,
    NAMESPACE,
    Manifest,
    container,
    env,
    find,
    kinds,
    lint,
    render,
    render_error,
    render_notes,
    values_file,
)

KUBERNETES_VERSION = "1.31.0"
SCHEMA: dict[str, Any] = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
DEFAULTS: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
VALUE_SETS = ["all-on", "sasl-ssl", "keda", "network-policy", "oauth"]
"""tests/deploy/values/*.yaml, each applied over ci/ci-values.yaml."""

CORE_KINDS = {"ServiceAccount", "ConfigMap", "Service", "Deployment", "PodDisruptionBudget"}


def _value_set(name: str) -> list[Path]:
    return [] if name == "ci" else [values_file(name)]


# --- helm lint and the values schema -------------------------------------------------------------


def test_lint_strict_passes_with_the_ci_values() -> None:
    done = lint([CI_VALUES])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("name", VALUE_SETS)
def test_lint_strict_passes_with_each_value_set(name: str) -> None:
    done = lint([CI_VALUES, values_file(name)])
    assert done.returncode == 0, done.stdout + done.stderr


def test_lint_of_the_bare_chart_fails_naming_every_value_an_operator_must_set() -> None:
    done = lint([])
    out = done.stdout + done.stderr
    assert done.returncode != 0
    for path in (
        "/kafka/bootstrapServers",
        "/kafka/partitions",
        "/capillary/loyaltyBaseUrl",
        "/capillary/gatewayBaseUrl",
        "/capillary/username",
        "/capillary/password",
        "/capillary/existingSecret",
    ):
        assert f"'{path}'" in out, f"{path} not named in:\n{out}"


@pytest.mark.parametrize(
    ("values", "misspelt"),
    [
        ({"replicaCont": 2}, "replicaCont"),
        ({"kafka": {"bootstrapServer": "kafka:9092"}}, "bootstrapServer"),
        ({"kafka": {"security": {"sasl": {"usernme": "bot"}}}}, "usernme"),
        ({"prometheusRule": {"lagTreshold": 10}}, "lagTreshold"),
        ({"networkPolicy": {"egress": {"kafka": {"to": [{"ipblock": {}}]}}}}, "ipblock"),
        ({"livenessProbe": {"httpGet": {"path": "/healthz", "port": "http", "paht": "/"}}}, "paht"),
    ],
)
def test_a_misspelt_key_fails_lint_with_a_message_naming_it(
    tmp_path: Path, values: dict[str, Any], misspelt: str
) -> None:
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump(values), encoding="utf-8")
    done = lint([CI_VALUES, typo])
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"additional properties '{misspelt}' not allowed" in out, out


def _schema_nodes(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema with its JSON path in the schema document."""
    if isinstance(node, dict):
        yield path, node
        for key, child in node.items():
            yield from _schema_nodes(child, f"{path}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _schema_nodes(child, f"{path}/{index}")


FREE_FORM_MAPS = {
    "#/$defs/stringMap": "labels, annotations, nodeSelector: keys are the operator's",
    "#/$defs/resourceList": "resource names, checked by a pattern",
    "#/properties/extraEnv": "RETURN_HANDLER_* names, checked by a pattern",
}
"""Objects whose keys are the operator's: they type their values instead of refusing keys."""


def test_every_object_of_the_schema_refuses_unknown_keys() -> None:
    lax = []
    for path, node in _schema_nodes(SCHEMA, "#"):
        if node.get("type") != "object":
            continue
        extra = node.get("additionalProperties")
        if path in FREE_FORM_MAPS:
            assert isinstance(extra, dict), path
            assert "type" in extra or "$ref" in extra, path
        elif path == "#/properties/policy":
            # The service checks its policy file itself, and refuses unknown keys at start.
            assert extra is True
        elif extra is not False:
            lax.append(path)
    assert lax == []


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SCHEMA
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _value_paths(
    value: Any, schema: dict[str, Any], path: str
) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    schema = _resolve(schema)
    yield path, value, schema
    if isinstance(value, dict) and "properties" in schema:
        for key, child in value.items():
            yield from _value_paths(child, schema["properties"][key], f"{path}.{key}")


def test_every_value_in_values_yaml_has_a_type() -> None:
    untyped = [
        path
        for path, _, schema in _value_paths(DEFAULTS, SCHEMA, "")
        if "type" not in schema and "enum" not in schema and "const" not in schema
    ]
    assert untyped == []


def test_an_unknown_key_is_refused_at_every_level_of_values_yaml() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    ci = yaml.safe_load(CI_VALUES.read_text(encoding="utf-8"))
    accepted = []
    checked = 0
    for path, value, schema in _value_paths(DEFAULTS, SCHEMA, ""):
        # Maps whose keys are the operator's, and the policy (the service checks it).
        free_form = isinstance(schema.get("additionalProperties"), dict) or path == ".policy"
        if not isinstance(value, dict) or free_form:
            continue
        document = _merge(DEFAULTS, ci)
        target = document
        for key in path.split(".")[1:]:
            target = target[key]
        target["misspeltKey"] = 1
        errors = [e.message for e in validator.iter_errors(document)]
        checked += 1
        if not any("'misspeltKey'" in message for message in errors):
            accepted.append(path or "(top level)")
    assert accepted == []
    assert checked > 30


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = json.loads(json.dumps(base))
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# --- every rendered object is valid --------------------------------------------------------------


@pytest.mark.parametrize("name", ["ci", *VALUE_SETS])
def test_every_rendered_object_is_valid_for_kubernetes_or_its_crd(name: str) -> None:
    invalid = []
    for manifest in render(_value_set(name)):
        label = f"{manifest['kind']}/{manifest['metadata']['name']}"
        shape = CRD_SHAPES.get(manifest["kind"])
        try:
            if shape is not None:
                jsonschema.validate(manifest, shape, cls=jsonschema.Draft202012Validator)
            else:
                kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except jsonschema.ValidationError as error:
            invalid.append(f"{label}: {'.'.join(map(str, error.path))}: {error.message}")
        except kubernetes_validate.SchemaNotFoundError as error:
            invalid.append(f"{label}: {error.message}")
    assert invalid == []


def test_the_ci_values_render_the_core_objects_only() -> None:
    assert kinds(render()) == CORE_KINDS


def test_all_on_renders_every_optional_object() -> None:
    manifests = render([values_file("all-on")])
    assert kinds(manifests) == CORE_KINDS | {
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "TriggerAuthentication",
    }
    find(manifests, "ConfigMap", f"{FULLNAME}-dashboard")


def test_the_chart_creates_the_capillary_secret_only_without_an_existing_one() -> None:
    assert "Secret" not in kinds(render())
    secret = find(render([values_file("oauth")]), "Secret")
    assert set(secret["data"]) == {"oauth-secret"}


@pytest.mark.parametrize("name", ["ci", *VALUE_SETS])
def test_the_rendered_policy_is_one_the_service_accepts(name: str) -> None:
    configmap = find(render(_value_set(name)), "ConfigMap", f"{FULLNAME}-policy")
    policy = policy_from_yaml(configmap["data"]["policy.yaml"], "the chart's ConfigMap")
    if name == "all-on":
        assert policy.version == "acme-2026-11"
    else:
        assert policy.version.startswith("chart-")


# --- the pod: port, probes, environment ----------------------------------------------------------


def test_the_container_serves_http_on_the_observability_port() -> None:
    manifests = render(sets=["observability.port=9100"])
    assert container(manifests)["ports"] == [
        {"name": "http", "containerPort": 9100, "protocol": "TCP"}
    ]
    assert env(manifests)["RETURN_HANDLER_OBSERVABILITY__PORT"] == "9100"
    service = find(manifests, "Service")["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"] == [
        {"name": "http", "port": 9100, "targetPort": "http", "protocol": "TCP"}
    ]
    assert env(render())["RETURN_HANDLER_OBSERVABILITY__PORT"] == "8080"


def test_the_service_keeps_not_ready_pods_so_paused_ones_are_still_scraped() -> None:
    manifests = render()
    service = find(manifests, "Service")["spec"]
    pod_labels = find(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["publishNotReadyAddresses"] is True
    assert service["selector"].items() <= pod_labels.items()


def test_probes_ask_the_health_endpoints_on_the_http_port() -> None:
    pod = container(render())
    assert pod["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    liveness = pod["livenessProbe"]
    # A slow answer under load must not restart the pod: a minute of failures first.
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 60
    startup = pod["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_the_otlp_endpoint_is_passed_on_and_empty_by_default() -> None:
    assert env(render())["RETURN_HANDLER_OBSERVABILITY__OTLP_ENDPOINT"] == ""
    assert (
        env(render([values_file("all-on")]))["RETURN_HANDLER_OBSERVABILITY__OTLP_ENDPOINT"]
        == "https://otel-collector.observability:4318"
    )


def test_the_outcomes_dataschema_is_the_services_schemas_through_the_chart_service() -> None:
    manifests = render(sets=["observability.port=9100"])
    service = find(manifests, "Service")["metadata"]["name"]
    assert env(manifests)["RETURN_HANDLER_OBSERVABILITY__SCHEMAS_URL"] == (
        f"http://{service}.{NAMESPACE}.svc:9100/schemas/"
    )
    assert (
        env(render([values_file("all-on")]))["RETURN_HANDLER_OBSERVABILITY__SCHEMAS_URL"]
        == "https://schemas.example.com/return-handler/"
    )


def test_the_static_membership_id_is_the_pod_name() -> None:
    items = {item["name"]: item for item in container(render())["env"]}
    assert items["RETURN_HANDLER_KAFKA__GROUP_INSTANCE_ID"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }


def _mounted_secret_files(manifests: list[Manifest]) -> dict[str, tuple[str, str]]:
    """Path of every file mounted from a Secret: (Secret name, key)."""
    pod = find(manifests, "Deployment")["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    files = {}
    for mount in container(manifests)["volumeMounts"]:
        secret = secrets.get(mount["name"])
        if secret is None:
            continue
        assert mount["readOnly"] is True
        for item in secret["items"]:
            path = str(PurePosixPath(mount["mountPath"]) / item["path"])
            files[path] = (secret["secretName"], item["key"])
    return files


@pytest.mark.parametrize("name", ["ci", *VALUE_SETS])
def test_credentials_reach_the_pod_as_files_never_as_environment_values(name: str) -> None:
    manifests = render(_value_set(name))
    files = _mounted_secret_files(manifests)
    assert files, "no Secret is mounted"
    for item in container(manifests)["env"]:
        name = item["name"]
        assert "secretKeyRef" not in item.get("valueFrom", {}), name
        if name.endswith("_FILE"):
            assert item["value"] in files, f"{name}={item['value']} is not a mounted Secret file"
        else:
            assert "PASSWORD" not in name, name
            assert "SECRET" not in name, name
    # oauth.yaml's secret is in the chart's Secret, nowhere in the Deployment.
    assert "not-a-real-secret" not in json.dumps(find(manifests, "Deployment"))


def test_plaintext_kafka_passes_only_the_protocol() -> None:
    kafka = {k: v for k, v in env(render()).items() if k.startswith("RETURN_HANDLER_KAFKA__S")}
    assert kafka == {
        "RETURN_HANDLER_KAFKA__SECURITY_PROTOCOL": "PLAINTEXT",
        "RETURN_HANDLER_KAFKA__SESSION_TIMEOUT_MS": "30000",
        "RETURN_HANDLER_KAFKA__STATE_TOPIC": "return-handler-state",
    }


def test_sasl_ssl_mounts_the_password_and_the_ca_from_the_operators_secrets() -> None:
    manifests = render([values_file("sasl-ssl")])
    variables = env(manifests)
    files = _mounted_secret_files(manifests)
    assert variables["RETURN_HANDLER_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert variables["RETURN_HANDLER_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-256"
    assert variables["RETURN_HANDLER_KAFKA__SASL_USERNAME"] == "returns-consumer"
    password = variables["RETURN_HANDLER_KAFKA__SASL_PASSWORD_FILE"]
    assert files[password] == ("kafka-sasl", "sasl-password")
    assert files[variables["RETURN_HANDLER_KAFKA__SSL_CA_FILE"]] == ("kafka-tls", "ca.crt")
    assert "RETURN_HANDLER_KAFKA__SSL_CERT_FILE" not in variables
    assert "RETURN_HANDLER_KAFKA__SSL_KEY_FILE" not in variables


def test_a_client_certificate_is_mounted_with_its_key_and_key_password() -> None:
    manifests = render([values_file("all-on")])
    variables = env(manifests)
    files = _mounted_secret_files(manifests)
    expected = {
        "RETURN_HANDLER_KAFKA__SSL_CA_FILE": "ca.crt",
        "RETURN_HANDLER_KAFKA__SSL_CERT_FILE": "tls.crt",
        "RETURN_HANDLER_KAFKA__SSL_KEY_FILE": "tls.key",
        "RETURN_HANDLER_KAFKA__SSL_KEY_PASSWORD_FILE": "key-password",
    }
    for name, key in expected.items():
        assert files[variables[name]] == ("kafka-client-tls", key)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["kafka.security.sasl.existingSecret=kafka-sasl"],
            "kafka.security.sasl.existingSecret is set, but kafka.security.protocol PLAINTEXT",
        ),
        (
            ["kafka.security.tls.existingSecret=kafka-tls"],
            "kafka.security.tls.existingSecret is set, but kafka.security.protocol PLAINTEXT",
        ),
        (
            ["kafka.security.protocol=SSL", "kafka.security.tls.secretKeys.cert=tls.crt"],
            "kafka.security.tls.secretKeys.cert and .key go together",
        ),
        (["kafka.security.protocol=SASL_SSL"], "'/kafka/security/sasl/username'"),
        (["kafka.security.protocol=SASL_PLAINTEXT"], "'/kafka/security/sasl/existingSecret'"),
        (["kafka.security.protocol=TLS"], "'/kafka/security/protocol'"),
    ],
)
def test_contradicting_kafka_security_values_are_refused(sets: list[str], message: str) -> None:
    assert message in render_error(sets=sets)


# --- scaling: replicas, KEDA, disruption budget --------------------------------------------------


def test_replicas_beyond_the_partitions_are_refused() -> None:
    assert find(render(sets=["replicaCount=6"]), "Deployment")["spec"]["replicas"] == 6
    error = render_error(sets=["replicaCount=7"])
    assert "replicaCount (7) is above kafka.partitions (6)" in error


def test_the_schema_documents_why_partitions_bound_the_replicas() -> None:
    kafka = SCHEMA["properties"]["kafka"]
    assert "partitions" in kafka["required"]
    assert "sit idle" in kafka["properties"]["partitions"]["description"]
    assert (
        "kafka.partitions"
        in SCHEMA["properties"]["keda"]["properties"]["maxReplicaCount"]["description"]
    )


def test_with_keda_the_scaled_object_owns_the_replicas() -> None:
    manifests = render([values_file("keda")])
    assert "replicas" not in find(manifests, "Deployment")["spec"]
    scaled = find(manifests, "ScaledObject")["spec"]
    assert scaled["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (2, 4)
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"] == {
        "bootstrapServers": "kafka-0.kafka.example:9092,kafka-1.kafka.example:9092",
        "consumerGroup": "return-handler",
        "topic": "returns",
        "lagThreshold": "250",
        "offsetResetPolicy": "earliest",
        "allowIdleConsumers": "false",
    }
    assert "authenticationRef" not in trigger
    assert "TriggerAuthentication" not in kinds(manifests)


def test_keda_scales_up_to_the_partitions_by_default_and_never_beyond() -> None:
    scaled = find(render(sets=["keda.enabled=true"]), "ScaledObject")["spec"]
    assert scaled["maxReplicaCount"] == 6
    error = render_error(sets=["keda.enabled=true", "keda.maxReplicaCount=7"])
    assert "keda.maxReplicaCount (7) is above kafka.partitions (6)" in error
    assert "'/keda/minReplicaCount'" in render_error(
        sets=["keda.enabled=true", "keda.minReplicaCount=0"]
    )


def test_keda_reads_the_lag_with_the_services_sasl_and_tls_credentials() -> None:
    manifests = render([values_file("sasl-ssl"), values_file("keda")])
    [trigger] = find(manifests, "ScaledObject")["spec"]["triggers"]
    assert trigger["metadata"]["sasl"] == "scram_sha256"
    assert trigger["metadata"]["tls"] == "enable"
    auth = find(manifests, "TriggerAuthentication", f"{FULLNAME}-kafka")
    assert trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "password", "name": "kafka-sasl", "key": "sasl-password"},
        {"parameter": "ca", "name": "kafka-tls", "key": "ca.crt"},
    ]
    [username] = auth["spec"]["env"]
    assert username["parameter"] == "username"
    assert username["containerName"] == container(manifests)["name"]
    assert env(manifests)[username["name"]] == "returns-consumer"


def test_the_disruption_budget_takes_one_pod_and_lets_paused_pods_go() -> None:
    manifests = render()
    budget = find(manifests, "PodDisruptionBudget")["spec"]
    pod_labels = find(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert budget["maxUnavailable"] == 1
    assert budget["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert budget["selector"]["matchLabels"].items() <= pod_labels.items()
    budget = find(render([values_file("all-on")]), "PodDisruptionBudget")["spec"]
    assert budget["maxUnavailable"] == 2


# --- NetworkPolicy -------------------------------------------------------------------------------


def _egress_by_port(policy: Manifest) -> dict[tuple[tuple[int | str, str], ...], list[Any]]:
    return {
        tuple((p["port"], p["protocol"]) for p in rule["ports"]): rule.get("to", [])
        for rule in policy["spec"]["egress"]
    }


def test_the_network_policy_allows_kafka_capillary_dns_otlp_out_and_http_in() -> None:
    manifests = render([values_file("network-policy")])
    policy = find(manifests, "NetworkPolicy")
    pod_labels = find(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert ingress["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "monitoring"
    }
    egress = _egress_by_port(policy)
    assert egress == {
        ((9092, "TCP"), (9093, "TCP")): [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        ((443, "TCP"),): [],
        ((53, "UDP"), (53, "TCP")): DEFAULTS["networkPolicy"]["egress"]["dns"]["to"],
        ((4318, "TCP"),): [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
        ],
    }


def test_the_network_policy_takes_its_ports_from_the_addresses() -> None:
    policy = find(render([values_file("oauth")], ["networkPolicy.enabled=true"]), "NetworkPolicy")
    ports = set(_egress_by_port(policy))
    # Kafka from bootstrapServers; Capillary 443 from https and 8443 from the OAuth URL.
    assert ports == {((9092, "TCP"),), ((443, "TCP"), (8443, "TCP")), ((53, "UDP"), (53, "TCP"))}


# --- NOTES.txt -----------------------------------------------------------------------------------


def test_the_notes_say_what_was_installed_and_how_to_check_health_and_metrics() -> None:
    notes = render_notes([values_file("all-on")])
    for line in (
        f"Deployment {FULLNAME} (replicas owned by KEDA)",
        f"KEDA ScaledObject {FULLNAME} (1 to 6 replicas",
        f"TriggerAuthentication {FULLNAME}-kafka",
        f"PrometheusRule {FULLNAME}",
        f"ServiceMonitor {FULLNAME}",
        f"NetworkPolicy {FULLNAME}",
        f"kubectl port-forward -n returns service/{FULLNAME} 8080:http",
        "curl -i http://127.0.0.1:8080/healthz",
        "curl -i http://127.0.0.1:8080/readyz",
        "curl -s http://127.0.0.1:8080/metrics",
        "kafka.partitions = 6 replicas",
    ):
        assert line in notes


def test_the_notes_list_the_values_still_empty() -> None:
    notes = render_notes()
    assert "observability.otlpEndpoint: no traces are exported" in notes
    assert "kafka.security.protocol is PLAINTEXT" in notes
    assert "WARNING" not in notes
    skipped = render_notes(sets=["kafka.bootstrapServers="], skip_schema=True)
    assert "WARNING: these values are empty" in skipped
    assert "  - kafka.bootstrapServers\n" in skipped + "\n"
