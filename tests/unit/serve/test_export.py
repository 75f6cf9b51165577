import pytest
import yaml

from shipyard.core.errors import InvalidArgument
from shipyard.serve.export import dockerfile, kubernetes, kubernetes_yaml


def test_kubernetes_manifests_have_probes_resources_service_and_autoscaler():
    docs = list(
        yaml.safe_load_all(
            kubernetes_yaml(kubernetes("churn@production", image="reg/churn:1", replicas=2))
        )
    )
    kinds = [d["kind"] for d in docs]
    assert kinds == ["Deployment", "Service", "HorizontalPodAutoscaler"]
    deployment, service, hpa = docs
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "reg/churn:1"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["resources"]["requests"]["cpu"]
    assert "churn@production" in container["args"]
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    assert service["spec"]["selector"] == labels
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] == 2
    assert deployment["metadata"]["name"] == "churn-production"


def test_dockerfile_runs_the_server_with_a_health_check():
    text = dockerfile("churn@production")
    assert text.startswith("# Generated")
    assert "FROM python:3.11-slim" in text
    assert "/v2/health/ready" in text
    assert '"serve", "churn@production"' in text
    assert "USER shipyard" in text


def test_bad_references_are_refused():
    with pytest.raises(InvalidArgument, match="name@alias"):
        kubernetes("churn", image="x")
    with pytest.raises(InvalidArgument, match="replicas"):
        kubernetes("churn@production", image="x", replicas=0)
