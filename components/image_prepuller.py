"""ImagePrepuller: keeps every app image on every node the apps can run on, so a burst's pods start
without a pull.

A burst's first pods take the room of preempted headroom placeholders, on nodes that have often
never run that app: without the image, each pod waits for a pull (0.2-0.5 GiB at 10-40 s per GiB,
capacity/timings.yaml) before its probes start. This DaemonSet has one init container per app
image that runs ``command`` (which exits at once) and then only a pause container, so every node
pulls every app image when it joins or when an image changes, and keeps it: the kubelet reclaims
images only under disk pressure, and never those of a container that exists. Like the apps it has
no node selector and no toleration, so it runs exactly where the apps' pods may be scheduled.

Costs: an image's pull on every node (the registry's data transfer is in-region), and per node
a pause container's 1m CPU and 8 MiB; the init containers' requests count only while they run.
The burst model reads it (capacity/timings.py ``AppFacts.prepulled_on``): a node at rest that
the DaemonSet covers has the images.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import require_valid, restricted_container
from components.headroom import PAUSE_IMAGE

NAME = "image-prepuller"


@dataclass(frozen=True, kw_only=True)
class ImagePrepullSettings:
    """``cofounder:imagePrepull``: the app images kept on every node the apps may run on."""

    #: Keep every app image on every node, so a burst's pods on a node that has not run them yet
    #: start without a pull (docs/cost-and-burst.md, lever 6).
    enabled: bool = True
    #: What each init container runs with an app image: a command every app image has that exits
    #: at once (the seed's apps are Node.js images).
    command: list[str] = field(default_factory=lambda: ["node", "-e", "0"])

    def checks(self):
        if not self.command:
            yield "command", self.command, "a command with at least its program"


@dataclass(frozen=True, kw_only=True)
class ImagePrepullerArgs(ImagePrepullSettings):
    """Settings plus the wiring."""

    #: The app namespace (its PSA level is restricted: the pod is).
    namespace: pulumi.Input[str]
    #: Each app's image as its Deployment names it (by digest in prod), by app name.
    images: Mapping[str, pulumi.Input[str]]
    pause_image: str = PAUSE_IMAGE


def _container(name: str, image: pulumi.Input[str], command: list[str] | None, memory: str) -> dict:
    return {"name": name, "image": image, **({"command": command} if command else {}),
            "imagePullPolicy": "IfNotPresent", "securityContext": restricted_container(),
            "resources": {"requests": {"cpu": "1m", "memory": memory}, "limits": {"memory": memory}}}


class ImagePrepuller(pulumi.ComponentResource):
    """The DaemonSet ``image-prepuller`` in the app namespace."""

    daemon_set_name: str

    def __init__(self, name: str, args: ImagePrepullerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cofounder:apps:ImagePrepuller", name, None, opts)
        require_valid(f"ImagePrepuller {name}", args)
        labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "cofounder",
                  "app.kubernetes.io/managed-by": "pulumi"}
        selector = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": "cofounder"}
        daemon_set = k8s.apps.v1.DaemonSet(
            f"{name}-daemonset",
            metadata={"name": NAME, "namespace": args.namespace, "labels": labels},
            spec={
                "selector": {"matchLabels": selector},
                # a new image reaches every node within a few rounds, not one node at a time
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                            "seccompProfile": {"type": "RuntimeDefault"}},
                        # Node.js needs ~40 MiB to start and exit; these requests count only while they run
                        "initContainers": [_container(f"pull-{app}", image, list(args.command), "128Mi")
                                           for app, image in sorted(args.images.items())],
                        "containers": [_container("pause", args.pause_image, None, "8Mi")],
                        "terminationGracePeriodSeconds": 1,
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self))
        self.daemon_set_name = NAME
        self.register_outputs({"daemon_set": daemon_set.metadata["name"]})
