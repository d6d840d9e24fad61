#!/usr/bin/env python3
"""Proves what the Kubernetes base lets a competitor do, by evaluating its NetworkPolicies.

It reads every manifest of deploy/kubernetes/base, models the pods the Deployments create
(labels, namespace, named container ports) and answers "is this connection allowed?" with
the NetworkPolicy rules of networking.k8s.io/v1: a pod selected by a policy with a policy
type is isolated for that direction, and a connection is allowed when any rule of any
policy selecting the pod admits the peer and the port. Then it checks:

- a competitor's only egress is TCP to a gateway pod's platform port (the port the gateway
  Deployment names `platform` and sets in JANUS_PLATFORM_LISTEN); DNS, the gateway's client
  port, other competitors, the API server and the internet are denied;
- a competitor accepts connections only from gateway pods, on its own port;
- in docker-compose.yml, competitors sit only on the internal network where the gateway
  binds its platform listener (and not its client listener), without secrets or ports;
- secrets are mounted into the gateway only, and every competitor keeps the template's
  hardening (limits, runAsNonRoot, read-only root, no capabilities, seccomp RuntimeDefault,
  no service-account token).

The evaluator is checked too: it must reject deliberately loosened copies of the policy,
so a checker that allowed everything would fail here. Exits 1 with every failure listed.
"""

from __future__ import annotations

import copy
import ipaddress
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent.parent
BASE = DEPLOY / "kubernetes" / "base"
COMPOSE = DEPLOY / "docker-compose.yml"
NAMESPACE = "janus"


@dataclass
class Pod:
    name: str
    namespace: str
    labels: dict[str, str]
    ip: str
    # named container ports: name -> (port, protocol)
    ports: dict[str, tuple[int, str]] = field(default_factory=dict)


def load_base() -> list[dict]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((BASE / name).read_text()):
            if doc:
                docs.append(doc)
    return docs


def match_labels(selector: dict | None, labels: dict[str, str]) -> bool:
    """A LabelSelector; an empty selector matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


NAMESPACE_LABELS = {
    NAMESPACE: {"kubernetes.io/metadata.name": NAMESPACE},
    "kube-system": {"kubernetes.io/metadata.name": "kube-system"},
    "elsewhere": {"kubernetes.io/metadata.name": "elsewhere"},
}


def peer_matches(peer: dict, policy_ns: str, other: Pod) -> bool:
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(c) for c in block.get("except") or [])
    pod_selector = peer.get("podSelector")
    ns_selector = peer.get("namespaceSelector")
    if ns_selector is None:
        if other.namespace != policy_ns:
            return False
    elif not match_labels(ns_selector, NAMESPACE_LABELS.get(other.namespace, {})):
        return False
    return pod_selector is None or match_labels(pod_selector, other.labels)


def port_matches(rule_ports: list | None, target: Pod, port: int, protocol: str) -> bool:
    """Ports are those of the pod receiving the connection (named ports resolve there)."""
    if not rule_ports:
        return True
    for p in rule_ports:
        if p.get("protocol", "TCP") != protocol:
            continue
        wanted = p.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            named = target.ports.get(wanted)
            if named and named == (port, protocol):
                return True
            continue
        end = p.get("endPort", wanted)
        if wanted <= port <= end:
            return True
    return False


def allowed(policies: list[dict], src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
    """Whether src may open a connection to dst:port: egress of src and ingress of dst."""

    def direction_ok(pod: Pod, kind: str, peer: Pod) -> bool:
        selecting = [
            p
            for p in policies
            if p["metadata"].get("namespace", NAMESPACE) == pod.namespace
            and match_labels(p["spec"].get("podSelector"), pod.labels)
            and kind in (p["spec"].get("policyTypes") or ["Ingress"])
        ]
        if not selecting:
            return True  # not isolated in this direction
        key, peers_key = ("egress", "to") if kind == "Egress" else ("ingress", "from")
        for policy in selecting:
            ns = policy["metadata"].get("namespace", NAMESPACE)
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if peers is not None and not any(peer_matches(x, ns, peer) for x in peers):
                    continue
                if port_matches(rule.get("ports"), dst, port, protocol):
                    return True
        return False

    return direction_ok(src, "Egress", dst) and direction_ok(dst, "Ingress", src)


def pods_of(docs: list[dict]) -> dict[str, Pod]:
    pods = {}
    for n, doc in enumerate(d for d in docs if d["kind"] == "Deployment"):
        template = doc["spec"]["template"]
        ports = {}
        for container in template["spec"]["containers"]:
            for p in container.get("ports") or []:
                if "name" in p:
                    ports[p["name"]] = (p["containerPort"], p.get("protocol", "TCP"))
        pods[doc["metadata"]["name"]] = Pod(
            name=doc["metadata"]["name"],
            namespace=NAMESPACE,
            labels=template["metadata"]["labels"],
            ip=f"10.0.0.{10 + n}",
            ports=ports,
        )
    return pods


def env_of(deployment: dict) -> dict[str, str]:
    env = {}
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        for var in container.get("env") or []:
            if "value" in var:
                env[var["name"]] = var["value"]
    return env


def check(docs: list[dict]) -> list[str]:
    failures: list[str] = []

    def expect(condition: bool, what: str) -> None:
        if not condition:
            failures.append(what)

    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    pods = pods_of(docs)
    gateway = pods.get("janus-gateway")
    competitors = [p for p in pods.values() if p.labels.get("app.kubernetes.io/component") == "competitor"]
    expect(gateway is not None, "no janus-gateway Deployment")
    expect(len(competitors) >= 1, "no competitor Deployment")
    if gateway is None or not competitors:
        return failures

    platform_port = gateway.ports.get("platform", (None, None))[0]
    client_port = gateway.ports.get("http", (None, None))[0]
    expect(platform_port is not None, "the gateway names no `platform` container port")
    listen = env_of(deployments["janus-gateway"]).get("JANUS_PLATFORM_LISTEN", "")
    expect(
        listen.endswith(f":{platform_port}"),
        f"JANUS_PLATFORM_LISTEN {listen!r} is not the platform port {platform_port}",
    )

    # Modelled peers. Their addresses are data for the ipBlock rules only: this checker
    # opens no socket. The "internet" one is from TEST-NET-3 (RFC 5737, never routed).
    dns = Pod("kube-dns", "kube-system", {"k8s-app": "kube-dns"}, "10.96.0.10", {"dns": (53, "UDP")})
    api_server = Pod("kubernetes", "default", {}, "10.96.0.1")
    internet = Pod("internet", "", {}, "203.0.113.7")
    foreign = Pod("elsewhere", "elsewhere", {"app.kubernetes.io/component": "gateway"}, "10.1.0.5")

    for c in competitors:
        own_port = c.ports["http"][0]
        # Egress: exactly the platform port of the gateway.
        expect(allowed(policies, c, gateway, platform_port), f"{c.name} cannot reach the gateway platform port")
        for port in sorted({client_port, 80, 443, 8080, 9090, platform_port + 1, platform_port - 1}):
            expect(not allowed(policies, c, gateway, port), f"{c.name} may reach the gateway on {port}")
        expect(not allowed(policies, c, gateway, platform_port, "UDP"), f"{c.name} may send UDP to the platform port")
        expect(not allowed(policies, c, dns, 53, "UDP"), f"{c.name} may query DNS over UDP")
        expect(not allowed(policies, c, dns, 53, "TCP"), f"{c.name} may query DNS over TCP")
        expect(not allowed(policies, c, api_server, 443), f"{c.name} may reach the API server")
        for port in (80, 443, platform_port):
            expect(not allowed(policies, c, internet, port), f"{c.name} may reach the internet on {port}")
        expect(not allowed(policies, c, foreign, platform_port), f"{c.name} may reach a gateway-labelled pod in another namespace")
        for other in competitors:
            if other is not c:
                expect(not allowed(policies, c, other, other.ports["http"][0]), f"{c.name} may reach {other.name}")
        # Ingress: only the gateway, only on the competitor's port.
        expect(allowed(policies, gateway, c, own_port), f"the gateway cannot reach {c.name}")
        expect(not allowed(policies, gateway, c, own_port + 1), f"the gateway may reach {c.name} on another port")
        expect(not allowed(policies, foreign, c, own_port), f"a pod of another namespace may reach {c.name}")
        expect(not allowed(policies, internet, c, own_port), f"the internet may reach {c.name}")

    # The gateway's platform port answers competitors only.
    expect(not allowed(policies, internet, gateway, platform_port), "anyone may reach the platform port")
    expect(allowed(policies, internet, gateway, client_port), "clients cannot reach the gateway's client port")

    # Secrets: mounted into the gateway only.
    for name, d in deployments.items():
        spec = d["spec"]["template"]["spec"]
        uses_secret = any("secret" in v for v in spec.get("volumes") or []) or any(
            "secretRef" in str(c.get("envFrom")) or "secretKeyRef" in str(c.get("env"))
            for c in spec["containers"]
        )
        if name != "janus-gateway":
            expect(not uses_secret, f"{name} mounts or reads a Secret")
        else:
            expect(uses_secret, "the gateway mounts no Secret (signing keys, platform secrets)")

    # The competitor template's hardening, on every competitor.
    for c in competitors:
        spec = deployments[c.name]["spec"]["template"]["spec"]
        pod_sc = spec.get("securityContext") or {}
        expect(spec.get("automountServiceAccountToken") is False, f"{c.name} mounts a service-account token")
        expect(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{c.name} has no RuntimeDefault seccomp")
        for container in spec["containers"]:
            sc = container.get("securityContext") or {}
            limits = (container.get("resources") or {}).get("limits") or {}
            expect({"cpu", "memory"} <= set(limits), f"{c.name}: no cpu/memory limits")
            expect(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{c.name}: not runAsNonRoot")
            expect(sc.get("readOnlyRootFilesystem") is True, f"{c.name}: root filesystem writable")
            expect(sc.get("allowPrivilegeEscalation") is False, f"{c.name}: privilege escalation allowed")
            expect(sc.get("capabilities", {}).get("drop") == ["ALL"], f"{c.name}: capabilities not all dropped")
            expect(not sc.get("capabilities", {}).get("add"), f"{c.name}: capabilities added")
    return failures


def check_compose(compose: dict) -> list[str]:
    """docker-compose.yml: competitors sit on internal networks only, where the gateway
    binds its platform port and not its client port; no secrets reach them."""
    failures: list[str] = []

    def expect(condition: bool, what: str) -> None:
        if not condition:
            failures.append(f"compose: {what}")

    networks = compose.get("networks") or {}
    services = compose["services"]
    gateway = services["gateway"]
    env = gateway.get("environment") or {}

    def network_of(address: str) -> str | None:
        ip = ipaddress.ip_address(address.rsplit(":", 1)[0])
        for name, net in networks.items():
            for pool in (net.get("ipam") or {}).get("config") or []:
                if ip in ipaddress.ip_network(pool["subnet"]):
                    return name
        return None

    client_net = network_of(env.get("JANUS_LISTEN", "0.0.0.0:0"))
    platform_net = network_of(env.get("JANUS_PLATFORM_LISTEN", "0.0.0.0:0"))
    expect(client_net is not None, "the gateway's client listener is not bound to one network's address")
    expect(platform_net is not None, "the platform listener is not bound to one network's address")
    expect(client_net != platform_net, "client and platform listeners share a network")
    expect(networks.get(platform_net, {}).get("internal") is True, f"network {platform_net} is not internal")
    for name, service in services.items():
        if name in ("gateway", "sandbox"):
            continue
        joined = service.get("networks") or []
        joined = list(joined) if isinstance(joined, (list, dict)) else []
        expect(joined == [platform_net], f"competitor {name} is on {joined}, not only {platform_net}")
        expect(not service.get("secrets"), f"competitor {name} gets secrets")
        expect(not service.get("ports"), f"competitor {name} publishes ports")
        expect(service.get("read_only") is True, f"competitor {name} has a writable root")
        expect(service.get("cap_drop") == ["ALL"], f"competitor {name} keeps capabilities")
    return failures


def loosened(docs: list[dict], change) -> list[dict]:
    docs = copy.deepcopy(docs)
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "competitors")
    change(policy["spec"])
    return docs


def main() -> int:
    docs = load_base()
    failures = check(docs)
    compose = yaml.safe_load(COMPOSE.read_text())
    failures += check_compose(compose)

    # The checker itself: each loosened policy must be caught.
    mutations = {
        "egress to anywhere": lambda s: s["egress"].append({}),
        "DNS allowed": lambda s: s["egress"].append(
            {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
        ),
        "egress to all gateway ports": lambda s: s["egress"][0].pop("ports"),
        "egress to 0.0.0.0/0": lambda s: s["egress"].append({"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}),
        "no egress isolation": lambda s: s.update(policyTypes=["Ingress"]),
        "ingress from anyone": lambda s: s["ingress"][0].pop("from"),
        "egress to every namespace": lambda s: s["egress"][0]["to"][0].update(namespaceSelector={}),
    }
    for what, change in mutations.items():
        if not check(loosened(docs, change)):
            failures.append(f"the checker missed a loosened policy: {what}")

    compose_mutations = {
        "competitor on the edge network": lambda c: c["services"]["hello"].update(networks=["competitors", "edge"]),
        "platform port on the edge network": lambda c: c["services"]["gateway"]["environment"].update(
            JANUS_PLATFORM_LISTEN="172.30.0.10:8001"
        ),
        "competitors network not internal": lambda c: c["networks"]["competitors"].pop("internal"),
    }
    for what, change in compose_mutations.items():
        variant = copy.deepcopy(compose)
        change(variant)
        if not check_compose(variant):
            failures.append(f"the checker missed a loosened compose file: {what}")

    if failures:
        for f in failures:
            print(f"check_policies: FAIL {f}", file=sys.stderr)
        return 1
    print(
        f"check_policies: ok ({len(mutations)} loosened policies and "
        f"{len(compose_mutations)} loosened compose files rejected)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
