"""cofounder:apps / scaling / autoscalers: stack values load, bad ones fail with one clear line."""

from __future__ import annotations

import copy

import pytest
import yaml

from components.app_service import IMAGE_REFERENCE
from infra.config import ConfigError
from toolkit.stackfile import STACKS_DIR


def _apps(stack="dev"):
    return copy.deepcopy(yaml.safe_load((STACKS_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]["cofounder:apps"])


def _with(app, **changes):
    apps = _apps()
    apps[app].update(changes)
    return {"cofounder:apps": apps}


DIGEST = "@sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize("image, ok", [
    ("ghcr.io/cofounder/backend:1.0.0", True),
    ("localhost:5000/backend:2", True),
    ("ghcr.io/cofounder/backend" + DIGEST, True),
    ("ghcr.io/cofounder/backend:1.0.0" + DIGEST, True),  # the tag for the reader, the digest for the runtime
    ("localhost:5000/backend:2" + DIGEST, True),
    ("localhost:5000/backend" + DIGEST, True),
    ("ghcr.io/cofounder/backend:latest-2", True),
    ("ghcr.io/cofounder/backend:latest", False),
    ("ghcr.io/cofounder/backend:latest" + DIGEST, False),
    ("ghcr.io/cofounder/backend", False),
    ("localhost:5000/backend", False),
    ("ghcr.io/cofounder/backend:1.0.0@sha256:" + "a" * 63, False),
    ("ghcr.io/cofounder/backend:1.0.0@sha256:" + "A" * 64, False),
    ("ghcr.io/cofounder/backend:1.0.0@sha512:" + "a" * 64, False),
    ("ghcr.io/cofounder/backend:1.0.0" + DIGEST + DIGEST, False),
    ("ecr:backend:1.0.0", True),                 # a repository of cofounder:imageRegistry
    ("ecr:backend:1.0.0" + DIGEST, True),
    ("ecr:backend" + DIGEST, True),
    ("ecr:backend", False),
    ("ecr:backend:latest", False),
    ("ecr:Backend:1.0.0", False),
])
def test_image_must_be_pinned(image, ok):
    assert IMAGE_REFERENCE.allows(image) is ok


@pytest.mark.parametrize("overrides, expected", [
    (_with("backend", image="ghcr.io/cofounder/backend:latest"),
     "cofounder:apps.backend.image = 'ghcr.io/cofounder/backend:latest' is not allowed: "
     "expected an image pinned by tag and/or digest: name:tag, name:tag@sha256:digest or name@sha256:digest, "
     "name being a registry path or ecr:<repository of cofounder:imageRegistry> "
     "(64 lowercase hex digits; never the tag latest)"),
    (_with("backend", image="ghcr.io/cofounder/backend"),
     "cofounder:apps.backend.image = 'ghcr.io/cofounder/backend' is not allowed: expected an image pinned by tag"),
    (_with("backend", minReplicas=4, maxReplicas=3),
     "cofounder:apps.backend.minReplicas = 4 is not allowed: expected at most maxReplicas (3)"),
    # the one replica cap: dev's cofounder:scaling.maxReplicasPerApp (10)
    (_with("backend", maxReplicas=11),
     "cofounder:apps.backend.maxReplicas = 11 is not allowed: expected at most cofounder:scaling.maxReplicasPerApp (10)"),
    (_with("worker", minReplicas=0),
     "cofounder:apps.worker.minReplicas = 0 is not allowed: expected a value of at least 1"),
    (_with("worker", terminationGracePeriodSeconds=10, preStopSleepSeconds=10),
     "cofounder:apps.worker.terminationGracePeriodSeconds = 10 is not allowed: expected more than preStopSleepSeconds (10)"),
    (_with("backend", maxReplica=5),
     "cofounder:apps.backend.maxReplica is not a known setting: did you mean 'maxReplicas'?"),
    (_with("backend", scaleUp={"stabilizationWindowSeconds": 0, "policies": [{"type": "Pod", "value": 4}]}),
     "cofounder:apps.backend.scaleUp.policies[0].type = 'Pod' is not allowed: expected one of Pods, Percent"),
    (_with("backend", scaleUp={"stabilizationWindowSeconds": 0, "policies": []}),
     "cofounder:apps.backend.scaleUp.policies = [] is not allowed: expected between 1 and 10 policies"),
    (_with("backend", dataAccess=["database", "Database_URL"]),
     "cofounder:apps.backend.dataAccess[1] = 'Database_URL' is not allowed: expected one of database, redis, queue"),
    (_with("backend", dataAccess=["redis"]),
     "cofounder:apps.backend.dbPoolSize = 20 is not allowed: expected above 0 exactly when dataAccess includes "
     "database"),
    (_with("worker", needsAws=False),
     "cofounder:apps.worker.consumesAgentQueue = true is not allowed: expected needsAws true and queue in "
     "dataAccess"),
    # a producer enqueues with its IRSA role: no role, no SendMessage
    (_with("backend", needsAws=False),
     "cofounder:apps.backend.needsAws = false is not allowed: expected true with queue in dataAccess: the pod "
     "enqueues agent runs with its IRSA role"),
    (_with("worker", activeAgentsTarget=5),
     "cofounder:apps.worker.activeAgentsTarget = 5.0 is not allowed: expected null for a consumesAgentQueue app: "
     "its running agents are its in-flight messages"),
    # the worker's grace period against the queues' longest run: a cross-section check
    (_with("worker", terminationGracePeriodSeconds=900),
     "cofounder:apps.worker.terminationGracePeriodSeconds = 900 is not allowed: expected at least "
     "preStopSleepSeconds (15) + cofounder:queues.maxAgentRunSeconds (900) = 915: a run taken just before "
     "SIGTERM must end before the pod is killed, or it is retried and spends one of its 2 attempts"),
    ({"cofounder:queues": {"maxAgentRunSeconds": 1800}},
     "cofounder:apps.worker.terminationGracePeriodSeconds = 960 is not allowed: expected at least "
     "preStopSleepSeconds (15) + cofounder:queues.maxAgentRunSeconds (1800) = 1815"),
    (_with("backend", activeAgentsTarget=0),
     "cofounder:apps.backend.activeAgentsTarget = 0.0 is not allowed: expected a value between 0.1 and 1000"),
    ({"cofounder:scaling": {"goalApps": ["api"]}},
     "cofounder:scaling.goalApps = 'api' is not allowed: expected names of apps in cofounder:apps (backend, frontend, worker)"),
    ({"cofounder:scaling": {"baselineReplicas": {"backend": 0}}},
     "cofounder:scaling.baselineReplicas.backend = 0 is not allowed: expected a value of at least 1"),
    ({"cofounder:scaling": {"peakUsers": 0}},
     "cofounder:scaling.peakUsers = 0 is not allowed: expected a value of at least 1"),
    ({"cofounder:scaling": {"requireHeadroomCoverage": "no"}},
     "cofounder:scaling.requireHeadroomCoverage = 'no' is not allowed: expected true or false"),
    ({"cofounder:scaling": {"p99LatencyMs": 5}},
     "cofounder:scaling.p99LatencyMs = 5 is not allowed: expected a value between 10 and 10000"),
    ({"cofounder:prometheusAdapter": {"prometheusUrl": "prometheus:9090"}},
     "cofounder:prometheusAdapter.prometheusUrl = 'prometheus:9090' is not allowed: expected a value matching"),
])
def test_bad_app_config_fails_with_a_clear_message(run_stack_with, overrides, expected):
    with pytest.raises(ConfigError) as err:
        run_stack_with("dev", overrides)
    message = str(err.value)
    assert message.startswith("stacks/Pulumi.dev.yaml: ")
    assert expected in message
    assert "\n" not in message


def test_bad_app_name_is_refused(run_stack_with):
    apps = _apps()
    apps["Back_End"] = apps.pop("backend")
    with pytest.raises(ConfigError, match=r"cofounder:apps.Back_End = 'Back_End' is not allowed"):
        run_stack_with("dev", {"cofounder:apps": apps, "cofounder:scaling": {"goalApps": ["worker"]}})


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_stack_apps_keep_the_fields_the_data_tier_reads(stack):
    """The connection budget reads maxReplicas and dbPoolSize of every app: only the apps that
    use the database have a pool, and the consumer of the agent queue is the long-running worker."""
    from infra.config import parse
    from toolkit.stackfile import load_stack_file
    apps = parse(stack, load_stack_file(stack).config).apps
    assert set(apps) == {"frontend", "backend", "worker"}
    assert {n: a.db_pool_size > 0 for n, a in apps.items()} == {"frontend": False, "backend": True, "worker": True}
    assert apps["frontend"].active_agents_target is None
    assert apps["worker"].safe_to_evict is False and apps["worker"].consumes_agent_queue
    assert [n for n, a in apps.items() if a.consumes_agent_queue] == ["worker"]
    # the API enqueues agent runs (the seed's POST handler): it has the queue settings and an IRSA role
    assert "queue" in apps["backend"].data_access and apps["backend"].needs_aws
    assert not apps["frontend"].needs_aws


def test_the_replica_cap_is_one_stack_setting():
    """cofounder:scaling.maxReplicasPerApp bounds every app's maxReplicas (the loader) and is the
    pack's k8s-hpa-max-replicas-bounded maximum (tests/test_docs.py): raising it is one reviewed line."""
    import json

    from infra.config import parse
    from toolkit.stackfile import load_stack_file
    config = dict(load_stack_file("dev").config)
    apps, scaling = json.loads(config["cofounder:apps"]), json.loads(config["cofounder:scaling"])
    apps["frontend"]["maxReplicas"] = 12  # no database pool: only the cap stands in the way
    config["cofounder:apps"] = json.dumps(apps)
    with pytest.raises(ConfigError, match=r"cofounder:apps.frontend.maxReplicas = 12 is not allowed: "
                                          r"expected at most cofounder:scaling.maxReplicasPerApp \(10\)"):
        parse("dev", config)
    config["cofounder:scaling"] = json.dumps({**scaling, "maxReplicasPerApp": 12})
    assert parse("dev", config).apps["frontend"].max_replicas == 12
