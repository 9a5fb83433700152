"""deploy/: the Dockerfile, the compose file and the Kubernetes manifests parse, name only
settings tiergate reads, point their probes at the real health endpoints, and the image's health
check works against a real gateway. (No container engine runs here; these are what can be checked
without one.)"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from gateway.settings import ENV_VARIABLES

DEPLOY = ROOT / "deploy"
DOCKERFILE = (DEPLOY / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((DEPLOY / "compose" / "docker-compose.yml").read_text())
K8S = {
    path.name: list(yaml.safe_load_all(path.read_text()))
    for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
}
# Read by the libraries tiergate uses: boto3's credential chain, Python itself.
FOREIGN = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "PYTHONUNBUFFERED"}


def _known(name: str) -> bool:
    return name in ENV_VARIABLES or name in FOREIGN


def _k8s(kind: str) -> dict:
    (found,) = [d for docs in K8S.values() for d in docs if d["kind"] == kind]
    return found


def _dockerfile_env() -> set[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    names = set()
    for line in text.splitlines():
        if line.startswith("ENV "):
            names.update(part.split("=", 1)[0] for part in shlex.split(line[4:]))
    return names


def test_the_dockerfile_names_only_real_settings_and_files():
    names = _dockerfile_env()
    assert {"TIERGATE_HOST", "TIERGATE_PORT", "TIERGATE_DATA_DIR"} <= names
    assert all(_known(n) for n in names), names
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            sources = [p for p in line.split()[1:-1] if not p.startswith("--")]
            for source in sources:
                assert (ROOT / source).exists(), source
    assert re.search(r"^USER (?!root)\w+", DOCKERFILE, re.M), "the image must not run as root"
    assert "HEALTHCHECK" in DOCKERFILE and "/healthz" in DOCKERFILE
    assert DOCKERFILE.count("FROM python:3.11-slim") == 2


def _healthcheck() -> list[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    command = re.search(r"HEALTHCHECK .*? CMD (.+)", text).group(1)
    return shlex.split(command)


def test_the_image_health_check_passes_on_a_gateway_and_fails_without_one(tiergate_factory):
    argv = _healthcheck()
    assert argv[0] == "python"
    server = tiergate_factory()
    env = {"TIERGATE_PORT": str(server.port), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    server.stop()
    down = subprocess.run([sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30)
    assert down.returncode != 0


def test_compose_runs_two_gateways_behind_a_load_balancer_on_shared_stores():
    services = COMPOSE["services"]
    gateways = [name for name, s in services.items() if s.get("image") == "tiergate:local"]
    assert len(gateways) == 2
    assert {"redis", "minio", "lb"} <= set(services)
    for name in gateways:
        env = services[name]["environment"]
        assert all(_known(k) for k in env), env
        assert env["TIERGATE_OBJECT_STORE"].startswith("s3://")
        assert env["TIERGATE_KV"].startswith("redis://redis:")
        assert env["TIERGATE_S3_ENDPOINT_URL"] == "http://minio:9000"
        assert "TIERGATE_SECRET_KEY" in env
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY.parent / services[name]["build"]["context"].replace("../..", ".")).is_dir()
    nginx = (DEPLOY / "compose" / "nginx.conf").read_text()
    upstreams = re.findall(r"server (\S+):8080", nginx)
    assert sorted(u for u in upstreams) == sorted(gateways)


def test_the_kubernetes_manifests_are_complete():
    kinds = {d["kind"] for docs in K8S.values() for d in docs}
    assert {
        "Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "Secret",
        "PodDisruptionBudget",
    } <= kinds
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(n for n in K8S if n != "kustomization.yaml")


def test_the_deployment_probes_the_real_endpoints_and_reads_only_real_settings():
    deployment = _k8s("Deployment")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port = container["ports"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TIERGATE_PORT"] == str(port["containerPort"])
    assert all(_known(k) for k in env), env
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    refs = {s.get("configMapRef", s.get("secretRef"))["name"] for s in container["envFrom"]}
    assert refs == {_k8s("ConfigMap")["metadata"]["name"], _k8s("Secret")["metadata"]["name"]}
    config = _k8s("ConfigMap")["data"]
    secret = _k8s("Secret")["stringData"]
    assert all(_known(k) for k in [*config, *secret]), [*config, *secret]
    assert "TIERGATE_SECRET_KEY" in secret and config["TIERGATE_KV"].startswith("redis://")
    labels = pod["metadata"]["labels"]
    for kind in ("Service", "PodDisruptionBudget"):
        spec = _k8s(kind)["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= labels.items(), kind
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = _k8s("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    service_port = _k8s("Service")["spec"]["ports"][0]["targetPort"]
    assert service_port == port["name"]


def test_kustomize_builds_the_manifests():
    import shutil

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    built = subprocess.run([kubectl, "kustomize", str(DEPLOY / "k8s")], capture_output=True,
                           text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    assert len(list(yaml.safe_load_all(built.stdout))) == len(K8S) - 1


SANDBOX_OPTIONS = {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"}


def test_every_shipped_layout_can_make_the_function_sandbox():
    """The image has bubblewrap and libseccomp, and the compose and Kubernetes layouts give the
    container what bubblewrap needs (docs/isolation.md says why, and is tested to say so)."""
    assert re.search(r"apt-get install[^\n]*\bbubblewrap\b[^\n]*\blibseccomp2\b", DOCKERFILE)
    for option in SANDBOX_OPTIONS:
        assert option in DOCKERFILE, option
    for name in ("gateway-a", "gateway-b"):
        assert set(COMPOSE["services"][name]["security_opt"]) == SANDBOX_OPTIONS
    pod = _k8s("Deployment")["spec"]["template"]["spec"]
    assert pod["hostUsers"] is False
    assert pod["securityContext"]["seccompProfile"]["type"] == "Unconfined"
    assert pod["securityContext"]["appArmorProfile"]["type"] == "Unconfined"
    (container,) = pod["containers"]
    assert container["securityContext"]["procMount"] == "Unmasked"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    isolation = (ROOT / "docs" / "isolation.md").read_text()
    for option in SANDBOX_OPTIONS:
        assert f"--security-opt {option}" in isolation, option
    for setting in ("hostUsers: false", "procMount: Unmasked", "seccompProfile: Unconfined"):
        assert setting in isolation, setting
