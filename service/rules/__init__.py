"""The rules: what to take back (or give back) for one event, decided without I/O.

``plan(event, policy, now)`` is pure: the service and ``return-handler plan`` call the same
function. ``load_policy(None)`` returns the packaged, commented default policy.
"""

from service.rules.engine import plan
from service.rules.explain import plan_to_text, render_plan
from service.rules.policy import Policy, load_policy, parse_policy

__all__ = ["Policy", "load_policy", "parse_policy", "plan", "plan_to_text", "render_plan"]
