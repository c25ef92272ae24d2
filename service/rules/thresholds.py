"""What the customer keeps after an event, and whether each benefit is still deserved.

A benefit earned by meeting a threshold stays when what the customer keeps still meets it:
spend is the money kept (``amounts.after``; for an exchange, the order's value with the
goods back netted against the goods out), quantity is the units kept (order lines minus
returned lines plus exchanged lines, per SKU when the threshold names one).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType

from service.events import ReturnEvent, ReturnType, Threshold, ThresholdKind

ZERO = Decimal(0)


def money(value: Decimal, currency: str) -> str:
    """Money for people: two decimals and the currency."""
    return f"{value:,.2f} {currency}"


def count(value: Decimal) -> str:
    """A quantity for people, without trailing zeros."""
    return format(value.normalize(), "f")


@dataclass(frozen=True)
class Kept:
    """What the customer keeps once the event is applied to the order."""

    return_type: ReturnType
    currency: str
    spend: Decimal
    goods_back: Decimal
    goods_out: Decimal
    lines_known: bool
    quantity_by_sku: Mapping[str, Decimal] = field(default_factory=dict)
    spend_by_sku: Mapping[str, Decimal] = field(default_factory=dict)
    unknown_lines: tuple[str, ...] = ()

    @property
    def why_lines_unknown(self) -> str:
        """Why units or spend per SKU cannot be counted."""
        if self.unknown_lines:
            return "returned_lines name lines that order_lines does not: " + ", ".join(
                self.unknown_lines
            )
        return "the event has no order lines"

    @property
    def keeps_nothing(self) -> bool:
        """No value is kept: the event amounts to a full return."""
        return self.spend <= ZERO

    @property
    def exchange_value_kept(self) -> bool:
        """An exchange whose goods out are worth at least the goods back."""
        return self.return_type is ReturnType.EXCHANGE and self.goods_out >= self.goods_back

    def quantity(self, sku: str | None) -> Decimal | None:
        """Units kept (of ``sku``, or of everything); None when the event has no lines."""
        if not self.lines_known:
            return None
        if sku is None:
            return sum(self.quantity_by_sku.values(), ZERO)
        return self.quantity_by_sku.get(sku, ZERO)

    def spend_on(self, sku: str) -> Decimal | None:
        """Money kept on one SKU; None when the event has no lines."""
        if not self.lines_known:
            return None
        return self.spend_by_sku.get(sku, ZERO)


def what_is_kept(event: ReturnEvent) -> Kept:
    """Apply the event to the order: the money and the units the customer keeps."""
    goods_back = sum((line.amount for line in event.returned_lines), ZERO)
    goods_out = sum((line.amount for line in event.exchanged_lines), ZERO)
    if event.return_type is ReturnType.FULL:
        spend = ZERO
    elif event.return_type is ReturnType.EXCHANGE:
        spend = max(ZERO, event.amounts.before - goods_back + goods_out)
    else:
        spend = event.amounts.after

    # Goods back from a line the order does not list cannot be netted against any SKU:
    # counting them nowhere would overstate what is kept, so nothing per line is counted.
    unknown: tuple[str, ...] = ()
    quantities: dict[str, Decimal] = {}
    spends: dict[str, Decimal] = {}
    if event.order_lines:
        listed = {line.line_id for line in event.order_lines}
        unknown = tuple(
            dict.fromkeys(b.line_id for b in event.returned_lines if b.line_id not in listed)
        )
        if event.return_type is ReturnType.FULL:
            # Everything goes back: every SKU of the order is kept at zero.
            quantities = dict.fromkeys((line.sku for line in event.order_lines), ZERO)
            spends = dict(quantities)
        else:
            quantities, spends = _net_of_returns(event)
    for out in event.exchanged_lines:
        quantities[out.sku] = quantities.get(out.sku, ZERO) + out.quantity
        spends[out.sku] = spends.get(out.sku, ZERO) + out.amount

    return Kept(
        return_type=event.return_type,
        currency=event.order.currency,
        spend=spend,
        goods_back=goods_back,
        goods_out=goods_out,
        lines_known=bool(event.order_lines) and not unknown,
        quantity_by_sku=MappingProxyType(quantities),
        spend_by_sku=MappingProxyType(spends),
        unknown_lines=unknown,
    )


def _net_of_returns(event: ReturnEvent) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """Each SKU's units and money of the order less what came back of its lines."""
    returned_qty: dict[str, Decimal] = {}
    returned_amount: dict[str, Decimal] = {}
    for back in event.returned_lines:
        returned_qty[back.line_id] = returned_qty.get(back.line_id, ZERO) + back.quantity
        returned_amount[back.line_id] = returned_amount.get(back.line_id, ZERO) + back.amount
    quantities: dict[str, Decimal] = {}
    spends: dict[str, Decimal] = {}
    for line in event.order_lines:
        qty = max(ZERO, line.quantity - returned_qty.get(line.line_id, ZERO))
        amount = max(ZERO, line.amount - returned_amount.get(line.line_id, ZERO))
        quantities[line.sku] = quantities.get(line.sku, ZERO) + qty
        spends[line.sku] = spends.get(line.sku, ZERO) + amount
    return quantities, spends


@dataclass(frozen=True)
class Verdict:
    """Whether a benefit stays: True keeps it, False takes it back, None cannot tell."""

    keep: bool | None
    reason_code: str
    reason: str


def _exchange_kept(kept: Kept) -> Verdict:
    return Verdict(
        True,
        "exchange_value_kept",
        f"exchange: the goods out ({money(kept.goods_out, kept.currency)}) are worth at least "
        f"the goods back ({money(kept.goods_back, kept.currency)}), so the customer keeps "
        "the order's value",
    )


def evaluate(threshold: Threshold, kept: Kept) -> Verdict:
    """Re-check ``threshold`` on what the customer keeps."""
    minimum = threshold.minimum
    scope = f" of SKU {threshold.sku}" if threshold.sku else ""
    if threshold.kind is ThresholdKind.SPEND:
        if kept.exchange_value_kept:
            return _exchange_kept(kept)
        value = kept.spend if threshold.sku is None else kept.spend_on(threshold.sku)
        if value is None:
            return Verdict(
                None,
                "threshold_unknowable",
                f"the spend{scope} kept cannot be worked out: {kept.why_lines_unknown}",
            )
        shown, wanted = money(value, kept.currency), money(minimum, kept.currency)
        if value >= minimum:
            return Verdict(
                True,
                "spend_threshold_met",
                f"the customer keeps {shown}{scope}, which still meets the minimum spend {wanted}",
            )
        return Verdict(
            False,
            "spend_threshold_lost",
            f"the customer keeps {shown}{scope}, below the minimum spend {wanted}",
        )
    units = kept.quantity(threshold.sku)
    if units is None:
        return Verdict(
            None,
            "threshold_unknowable",
            f"the units{scope} kept cannot be counted: {kept.why_lines_unknown}",
        )
    if units >= minimum:
        return Verdict(
            True,
            "quantity_threshold_met",
            f"the customer keeps {count(units)} unit(s){scope}, which still meets the minimum "
            f"quantity {count(minimum)}",
        )
    return Verdict(
        False,
        "quantity_threshold_lost",
        f"the customer keeps {count(units)} unit(s){scope}, below the minimum quantity "
        f"{count(minimum)}",
    )


def evaluate_without_threshold(kept: Kept) -> Verdict | None:
    """A benefit with no known threshold: settled only by an exchange that keeps the value."""
    if kept.exchange_value_kept:
        return _exchange_kept(kept)
    return None
