"""Draining behind the ALB: preStop sleep, grace period and deregistration delay, chosen together.

When a pod of a load-balanced app is deleted (a rollout, an HPA scale-in, a node drain), two
things start at t = 0 and run in parallel:

- the kubelet runs the preStop hook (``sleep S``), then sends SIGTERM; the process stops
  accepting connections, finishes what is in flight and exits; at ``G`` (the
  ``terminationGracePeriodSeconds``) it is killed;
- the endpoint disappears from the Service, the AWS Load Balancer Controller deregisters the
  pod's IP from the target group and the ALB stops sending it new requests, ``L`` seconds
  later; requests already in flight may continue for the deregistration delay ``D``.

No request is dropped when
1. ``S >= L``: the pod still accepts requests until the ALB has stopped sending them;
2. ``D = G - S``: the ALB lets in-flight requests run exactly as long as the pod, which stops
   accepting at ``S``, still lives (``L + D <= G`` follows from 1);
3. ``G - S >= R``, where ``R`` is the longest a request can legitimately run: CloudFront's
   origin read timeout for the path (a request CloudFront has already given up on is lost
   anyway). Streams (server-sent events) are closed by the app on SIGTERM; browsers reconnect.

``L`` is not a documented constant: endpoint removal, the controller's reconcile and the
DeregisterTargets call take a few seconds, and the ALB keeps routing to a draining target
briefly after the call (EKS Best Practices Guide, "Load Balancing: Gracefully handle the client
requests"; kubernetes-sigs/aws-load-balancer-controller#3270). 15 s is the margin used here.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Seconds from a pod's deletion until the ALB sends it no new request (see the module docstring).
DEREGISTRATION_PROPAGATION_SECONDS = 15
#: The ALB's limit on a target group's deregistration delay.
MAX_DEREGISTRATION_DELAY_SECONDS = 3600


@dataclass(frozen=True)
class Drain:
    """One load-balanced app's drain figures, in seconds."""

    pre_stop_sleep_seconds: int
    termination_grace_period_seconds: int
    #: The longest a request to this app may run (CloudFront's origin read timeout for its path).
    longest_request_seconds: int

    @property
    def deregistration_delay_seconds(self) -> int:
        return self.termination_grace_period_seconds - self.pre_stop_sleep_seconds

    def problems(self) -> list[tuple[str, int, str]]:
        """``(setting, value, what is allowed)`` for every rule above that does not hold."""
        found = []
        if self.pre_stop_sleep_seconds < DEREGISTRATION_PROPAGATION_SECONDS:
            found.append(("preStopSleepSeconds", self.pre_stop_sleep_seconds,
                          f"at least {DEREGISTRATION_PROPAGATION_SECONDS}: the ALB may still send new requests "
                          f"for that long after the pod is deleted"))
        needed = self.pre_stop_sleep_seconds + self.longest_request_seconds
        if self.termination_grace_period_seconds < needed:
            found.append(("terminationGracePeriodSeconds", self.termination_grace_period_seconds,
                          f"at least {needed} (preStopSleepSeconds {self.pre_stop_sleep_seconds} + the "
                          f"{self.longest_request_seconds} s CloudFront waits for a response) so an in-flight "
                          f"request finishes before the pod goes"))
        if self.deregistration_delay_seconds > MAX_DEREGISTRATION_DELAY_SECONDS:
            found.append(("terminationGracePeriodSeconds", self.termination_grace_period_seconds,
                          f"at most preStopSleepSeconds + {MAX_DEREGISTRATION_DELAY_SECONDS} (the ALB's longest "
                          f"deregistration delay) for an app behind the load balancer"))
        return found
