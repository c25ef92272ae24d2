"""The rules: what to take back (or give back) for one event, decided without I/O.

``plan(event, policy, now)`` is pure: the service and ``return-handler plan`` call the same
function. ``parse_policy(mapping, source)`` checks a parsed policy file; reading the file
(or the packaged, commented ``default-policy.yaml``) is ``service.policy_file``'s job, and
drawing the plan as a table is ``service.plan_display``'s.
"""

from service.rules.engine import plan
from service.rules.explain import describe
from service.rules.policy import Policy, parse_policy

__all__ = ["Policy", "describe", "parse_policy", "plan"]
