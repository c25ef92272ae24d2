"""The ledger: what the sandbox's state went through since its seed was loaded.

Counted where the state changes (``SandboxState``'s mutation methods), so it costs a counter
increment per change and nothing per request:

* ``revoked``: per benefit, how many times it went from active to revoked. Keys name the
  benefit as ``loyalty_earn:<earn id>``, ``loyalty_enrolment:<issual id>``,
  ``cart_earn:<earn id>``, ``coupon:<coupon id>`` (the coupon's id, not its code: a generic
  code is one coupon per holder) and ``cart_participation:<promotion id>/<customer id>`` (a
  deactivation without ``earnId``). The sandbox refuses to revoke what is already revoked,
  so a count above 1 means the benefit was given again and then taken again.
* ``enrolments``: per (loyalty promotion, customer), how many enrolments ENROL created (an
  ENROL of an enrolled customer creates none).
* ``earns_issued``: per (loyalty promotion, customer), how many earns EARN issued. EARN is
  not idempotent: a client that repeats it issues the earn again.
* ``deactivations``: per target (``deactivation:<promotion>/<customer>[/<earn id>]``), how
  many deactivate requests asked for it, the first one and every repeat of it once done
  (answered 200 again for a participation, 731 for an earn). The deactivate page has no
  "already deactivated" answer, so a client cannot tell a repeat from a first time: a
  count above 1 means it deactivated twice.

``GET /__admin/ledger`` answers :class:`LedgerReport`; loading a seed (or ``/__admin/reset``)
starts a new, empty ledger.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PairCount(_Model):
    """A count for one (loyalty promotion, customer)."""

    promotion_id: int
    customer_id: int
    count: int


class LedgerReport(_Model):
    """The ledger as the admin API serves it (``GET /__admin/ledger``)."""

    revoked: dict[str, int] = Field(
        default_factory=dict, description="benefit key -> successful take-backs"
    )
    enrolments: list[PairCount] = Field(
        default_factory=list, description="enrolments created per promotion and customer"
    )
    earns_issued: list[PairCount] = Field(
        default_factory=list, description="earns issued per promotion and customer"
    )
    revoked_more_than_once: int = Field(0, description="benefits taken back more than once")
    earns_issued_more_than_once: int = Field(
        0, description="(promotion, customer) pairs issued more than one earn"
    )
    deactivations: dict[str, int] = Field(
        default_factory=dict, description="deactivation target -> times it was asked once done"
    )
    deactivations_repeated: int = Field(0, description="targets deactivated more than once")


class Ledger:
    """Counters of state transitions; the state's mutation methods feed it."""

    def __init__(self) -> None:
        self.revoked: Counter[str] = Counter()
        self.enrolments: Counter[tuple[int, int]] = Counter()
        self.earns_issued: Counter[tuple[int, int]] = Counter()
        self.deactivations: Counter[str] = Counter()

    def report(self) -> LedgerReport:
        """A copy of the counters, safe to serialise."""

        def pairs(counter: Counter[tuple[int, int]]) -> list[PairCount]:
            return [
                PairCount(promotion_id=promotion, customer_id=customer, count=count)
                for (promotion, customer), count in sorted(counter.items())
            ]

        return LedgerReport(
            revoked=dict(sorted(self.revoked.items())),
            enrolments=pairs(self.enrolments),
            earns_issued=pairs(self.earns_issued),
            revoked_more_than_once=sum(1 for n in self.revoked.values() if n > 1),
            earns_issued_more_than_once=sum(1 for n in self.earns_issued.values() if n > 1),
            deactivations=dict(sorted(self.deactivations.items())),
            deactivations_repeated=sum(1 for n in self.deactivations.values() if n > 1),
        )
