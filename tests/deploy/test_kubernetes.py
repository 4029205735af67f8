"""``deploy/kubernetes/`` and the ``Dockerfile``, checked without a cluster (none is available here).

The manifests are parsed and cross-checked: names, labels, ports and probes agree between the
Deployment, both Services and the Job, and every command line they run is parsed by our own CLI
parser, so a renamed flag or port fails here instead of in someone's cluster. The container's
command is also run for real, as a local process, and asked what the kubelet's gRPC probe asks.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from argparse import Namespace
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from app.cli import build_parser
from app.greeter.helloworld_pb2 import HelloReply, HelloRequest
from tests.cli.test_cli import TIMEOUT, Daemon
from transport.client.resolver import DnsResolver, parse_target

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
#: What the kubelet puts in $(POD_NAME) (Downward API ``metadata.name``) for one of the pods.
SAMPLE_POD_NAME = "greeter-7c9d8b6f5d-x2k7q"

# --- reading the files ---------------------------------------------------------------------------


def documents(name: str) -> list[dict[str, Any]]:
    with (DEPLOY / name).open() as f:
        docs = [doc for doc in yaml.safe_load_all(f) if doc is not None]
    assert all(isinstance(doc, dict) for doc in docs), name
    return docs


def manifest(name: str) -> dict[str, Any]:
    """The one object in ``deploy/kubernetes/NAME``."""
    docs = documents(name)
    assert len(docs) == 1, f"{name} holds {len(docs)} objects, expected 1"
    return docs[0]


def deployment() -> dict[str, Any]:
    return manifest("deployment.yaml")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def server_container() -> dict[str, Any]:
    containers = pod_spec(deployment())["containers"]
    assert len(containers) == 1, [c["name"] for c in containers]
    container: dict[str, Any] = containers[0]
    return container


def grpc_port() -> dict[str, Any]:
    """The server container's port named ``grpc``."""
    ports = {p["name"]: p for p in server_container()["ports"]}
    assert "grpc" in ports, ports
    return ports["grpc"]


def kubelet_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet fills it in."""
    env: dict[str, str] = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        else:
            field = var["valueFrom"]["fieldRef"]["fieldPath"]
            assert field == "metadata.name", f"{var['name']}: this test knows only metadata.name, not {field}"
            env[var["name"]] = SAMPLE_POD_NAME
    return env


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def kubelet_args(container: dict[str, Any]) -> list[str]:
    """The container's args after the kubelet's ``$(VAR)`` expansion (``$$`` is a literal ``$``;
    an undefined ``$(VAR)`` stays as it is, which is how a typo reaches the process)."""
    env = kubelet_env(container)

    def expand(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return [_REFERENCE.sub(expand, str(arg)) for arg in container["args"]]


def parse_cli(argv: list[str]) -> Namespace:
    """``rpcviz ARGV`` as our own parser reads it; an unknown flag or bad value fails the test."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit as exc:
        raise AssertionError(f"rpcviz {' '.join(argv)}: our CLI refuses it (exit {exc.code})") from None


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, rest), continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    instructions = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def instruction(keyword: str) -> list[str]:
    """Every ``KEYWORD`` instruction's argument text, in order."""
    return [rest for kw, rest in dockerfile() if kw == keyword]


def exec_form(keyword: str) -> list[str]:
    """The last ENTRYPOINT/CMD (the one that counts), which must be exec form (a JSON array)."""
    values = instruction(keyword)
    assert values, f"the Dockerfile has no {keyword}"
    try:
        argv = json.loads(values[-1])
    except json.JSONDecodeError:
        raise AssertionError(f"{keyword} {values[-1]} is shell form: PID 1 would be a shell") from None
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv), values[-1]
    return argv


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


# --- the manifests -------------------------------------------------------------------------------

KINDS = {
    "deployment.yaml": ("apps/v1", "Deployment"),
    "service-clusterip.yaml": ("v1", "Service"),
    "service-headless.yaml": ("v1", "Service"),
    "client-job.yaml": ("batch/v1", "Job"),
    "kustomization.yaml": ("kustomize.config.k8s.io/v1beta1", "Kustomization"),
}
SERVICES = {"service-clusterip.yaml": "greeter", "service-headless.yaml": "greeter-headless"}


def test_every_manifest_parses_as_the_kind_its_file_is_named_for() -> None:
    assert sorted(p.name for p in DEPLOY.glob("*.y*ml")) == sorted(KINDS)
    for name, (api_version, kind) in KINDS.items():
        obj = manifest(name)
        assert (obj["apiVersion"], obj["kind"]) == (api_version, kind), name
    for name, service in SERVICES.items():
        assert manifest(name)["metadata"]["name"] == service


def test_kustomization_applies_the_server_side() -> None:
    """``kubectl apply -k`` creates the Deployment and both Services; the Job is applied on its
    own once the pods are ready."""
    resources = manifest("kustomization.yaml")["resources"]
    assert sorted(resources) == ["deployment.yaml", "service-clusterip.yaml", "service-headless.yaml"]
    assert all((DEPLOY / r).is_file() for r in resources)


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_kustomize_builds_the_deployment_and_both_services() -> None:
    """kubectl's own kustomize (offline: no cluster needed) reads the directory."""
    built = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY)], capture_output=True, text=True, timeout=60, check=False
    )
    assert built.returncode == 0, built.stderr
    objects = sorted((o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(built.stdout))
    assert objects == [("Deployment", "greeter"), ("Service", "greeter"), ("Service", "greeter-headless")]


def test_deployment_runs_four_serve_pods_from_the_package_image() -> None:
    spec = deployment()["spec"]
    assert spec["replicas"] == 4
    assert selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"])
    assert server_container()["image"] == f"rpcviz:{PYPROJECT['version']}"
    assert grpc_port() == {"name": "grpc", "containerPort": 50051, "protocol": "TCP"}
    assert pod_spec(deployment())["securityContext"]["runAsNonRoot"] is True


def test_deployment_args_are_a_serve_command_our_cli_accepts() -> None:
    """With $(POD_NAME) expanded, the args parse as ``rpcviz serve`` listening on every interface
    on the container port, reporting the pod's own name."""
    container = server_container()
    argv = kubelet_args(container)
    assert not any("$(" in arg for arg in argv), f"an undefined variable reaches the process: {argv}"
    args = parse_cli(argv)
    assert args.command == "serve"
    assert args.host == "0.0.0.0"  # serve's default, 127.0.0.1, is unreachable from the kubelet and other pods
    assert args.port == grpc_port()["containerPort"]
    assert args.name == SAMPLE_POD_NAME


def test_readiness_probe_is_the_native_grpc_probe_on_the_container_port() -> None:
    """The kubelet calls grpc.health.v1.Health/Check on this port with service "" (a gRPC probe
    takes a port number, not a name); liveness does not ask the health service, which answers
    NOT_SERVING on purpose while a pod drains."""
    container = server_container()
    readiness = container["readinessProbe"]
    assert set(readiness) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}
    assert readiness["grpc"]["port"] == grpc_port()["containerPort"]
    assert readiness["grpc"].get("service", "") == ""
    liveness = container["livenessProbe"]
    assert "grpc" not in liveness
    assert liveness["tcpSocket"]["port"] in ("grpc", grpc_port()["containerPort"])


def test_prestop_sleeps_then_the_drain_fits_in_the_termination_grace_period() -> None:
    """preStop sleeps while the endpoints update; then SIGTERM (NOT_SERVING, GOAWAY, --grace for
    the calls in flight); both must end before the kubelet's SIGKILL."""
    command = server_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    pause = float(command[1])
    grace = parse_cli(kubelet_args(server_container())).grace
    period = pod_spec(deployment())["terminationGracePeriodSeconds"]
    assert pause >= 1
    assert pause + grace < period, f"preStop {pause:g}s + --grace {grace:g}s must fit in {period}s"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_selects_the_deployment_pods_and_targets_the_grpc_port(name: str) -> None:
    service = manifest(name)["spec"]
    template_labels = deployment()["spec"]["template"]["metadata"]["labels"]
    assert service["selector"] == deployment()["spec"]["selector"]["matchLabels"]
    assert selects(service["selector"], template_labels)
    [port] = service["ports"]
    assert port["port"] == 50051
    assert port["targetPort"] in (grpc_port()["name"], grpc_port()["containerPort"])
    assert port.get("protocol", "TCP") == "TCP"


def test_clusterip_service_has_a_virtual_ip_and_headless_service_has_none() -> None:
    clusterip = manifest("service-clusterip.yaml")["spec"]
    assert clusterip.get("type", "ClusterIP") == "ClusterIP"
    assert clusterip.get("clusterIP") != "None"
    headless = manifest("service-headless.yaml")["spec"]
    assert headless["clusterIP"] == "None"
    assert headless.get("publishNotReadyAddresses", False) is False  # unready pods stay out of DNS


def test_job_calls_each_service_by_its_dns_name_with_flags_our_cli_accepts() -> None:
    """``rpcviz call greeter:50051`` (one address: the VIP, pick_first) and ``rpcviz call
    dns:///greeter-headless:50051 --policy round_robin`` (every pod IP), 100 calls each."""
    job = manifest("client-job.yaml")
    by_service: dict[str, Namespace] = {}
    for container in pod_spec(job)["containers"]:
        argv = kubelet_args(container)
        args = parse_cli(argv)
        assert args.command == "call", argv
        resolver = parse_target(args.target)
        assert isinstance(resolver, DnsResolver), args.target  # a Service name, not an IP
        by_service[resolver.host] = args
        ports = {s: manifest(f)["spec"]["ports"][0]["port"] for f, s in SERVICES.items()}
        assert resolver.host in ports, f"{args.target}: no Service is named {resolver.host!r}"
        assert resolver.port == ports[resolver.host], args.target
        assert args.calls == 100
        assert container["image"] == server_container()["image"]
    assert sorted(by_service) == ["greeter", "greeter-headless"]
    vip, pods = by_service["greeter"], by_service["greeter-headless"]
    assert not parse_target(vip.target).all_addresses and vip.policy == "pick_first"
    assert parse_target(pods.target).all_addresses and pods.policy == "round_robin"


def test_job_pods_are_not_selected_by_either_service() -> None:
    job = manifest("client-job.yaml")
    labels = job["spec"]["template"]["metadata"]["labels"]
    for name in SERVICES:
        assert not selects(manifest(name)["spec"]["selector"], labels), name
    assert pod_spec(job)["restartPolicy"] in ("Never", "OnFailure")


# --- the Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_entrypoint_and_cmd_parse_with_our_cli() -> None:
    """ENTRYPOINT is the package's console script, in exec form (rpcviz is PID 1 and gets the
    SIGTERM); CMD is a serve command on every interface on the port the Deployment declares."""
    assert instruction("FROM") == ["python:3.11-slim"]
    assert exec_form("ENTRYPOINT") == ["rpcviz"]
    assert PYPROJECT["scripts"]["rpcviz"] == "app.cli:main"
    args = parse_cli(exec_form("CMD"))
    assert args.command == "serve"
    assert args.host == "0.0.0.0"
    assert args.port == grpc_port()["containerPort"]
    assert instruction("EXPOSE") == [str(args.port)]
    [user] = instruction("USER")
    uid = user.partition(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: runAsNonRoot needs a numeric non-root uid"


def test_dockerfile_copies_what_pip_install_needs_and_dockerignore_keeps_it() -> None:
    copied = [part for rest in instruction("COPY") for part in rest.split()[:-1]]
    packages = {
        pattern.rstrip("*")
        for pattern in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"][
            "include"
        ]
    }
    assert {"pyproject.toml", PYPROJECT["readme"], *packages} <= set(copied)
    assert any(re.fullmatch(r"pip install (--\S+ )*\.( .*)?", run) for run in instruction("RUN"))
    ignored = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip() and line[0] != "#"
    ]
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch(source, pattern) for pattern in ignored), f"{source} is in .dockerignore"


# --- the container's command, run for real -------------------------------------------------------


def local(argv: list[str]) -> list[str]:
    """A pod's serve command with the pod IP swapped for 127.0.0.1 and the port for a free one."""
    swapped = list(argv)
    for flag, value in (("--host", "127.0.0.1"), ("--port", "0")):
        assert flag in swapped, argv
        swapped[swapped.index(flag) + 1] = value
    return swapped


COMMANDS = {
    "dockerfile-cmd": lambda: exec_form("CMD"),
    "deployment-args": lambda: kubelet_args(server_container()),
}


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for d in started:
            d.kill()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_containers_command_answers_the_kubelets_grpc_probe_with_serving(
    command: str, daemons: list[Daemon]
) -> None:
    """Run the pod's command as a process; grpcio's health stub sends what the kubelet sends
    (Check, service ""): SERVING. SIGTERM then stops it cleanly with the manifest's grace."""
    argv = local(COMMANDS[command]())
    expected = parse_cli(argv)
    d = Daemon(*argv)
    daemons.append(d)
    address = d.address()
    with grpc.insecure_channel(address) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        say_hello = channel.unary_unary(
            "/helloworld.Greeter/SayHello",
            request_serializer=HelloRequest.SerializeToString,
            response_deserializer=HelloReply.FromString,
        )
        _, call = say_hello.with_call(HelloRequest(name="kubelet"), timeout=5)
        assert dict(call.initial_metadata())["rpcviz-server"] == expected.name  # what `rpcviz call` tallies
    code, out, err = d.terminate(timeout=TIMEOUT)
    assert code == 0, err
    assert f"{expected.name}: SIGTERM, stopping (in-flight calls get {expected.grace:g}s)" in out
    assert "Traceback" not in err
