"""Parsing the policy: a mapping of keys in, a Policy or an error that names the bad key out."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from service.errors import ConfigurationError
from service.events import Channel, LoyaltyEarn, RegistrationSource
from service.rules import parse_policy
from service.rules.policy import CouponSeriesPolicy


def _yaml(text: str) -> dict[str, Any]:
    mapping: dict[str, Any] = yaml.safe_load(text)
    return mapping


def test_parse_policy_with_only_version_has_documented_defaults() -> None:
    policy = parse_policy({"version": "v"}, "p.yaml")

    assert policy.return_window_days is None
    assert policy.full_return.revoke_enrolment is True
    assert policy.partial_return.revoke_enrolment is False
    assert policy.partial_return.without_threshold == "keep"
    assert policy.customer.registration_source_by_channel == {
        Channel.POS: RegistrationSource.INSTORE,
        Channel.ECOMMERCE: RegistrationSource.ECOMMERCE,
    }


def test_parse_policy_reads_rules_from_a_mapping() -> None:
    policy = parse_policy(
        {
            "version": "shop-7",
            "return_window_days": 14,
            "loyalty_promotions": [
                {
                    "program_id": 2714,
                    "promotion_id": 202090,
                    "without_earn_ids": "revoke_all",
                    "threshold": {"kind": "SPEND", "minimum": "49.99"},
                }
            ],
        },
        "shop/policy.yaml",
    )

    assert policy.version == "shop-7"
    assert policy.return_window_days == 14
    rule = policy.loyalty_promotions[0]
    assert rule.without_earn_ids == "revoke_all"
    assert rule.threshold is not None
    assert str(rule.threshold.minimum) == "49.99"


@pytest.mark.parametrize(
    ("text", "version"),
    [("version: 2026-11-24\n", "2026-11-24"), ("version: 3\n", "3")],
)
def test_parse_policy_with_unquoted_version_keeps_its_text(text: str, version: str) -> None:
    assert parse_policy(_yaml(text), "p.yaml").version == version


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (
            "version: x\npartial_return: {without_treshold: keep}\n",
            "partial_return.without_treshold",
        ),
        ("version: x\nreturn_window_days: -1\n", "return_window_days"),
        (
            "version: x\npartial_return: {without_threshold: maybe}\n",
            "partial_return.without_threshold",
        ),
        ("return_window_days: 3\n", "version"),
        (
            "version: x\ncustomer: {loyalty_identifier_preference: [id, external_id]}\n",
            "customer.loyalty_identifier_preference.1",
        ),
        (
            "version: x\ncart_promotions: [{promotion_id: nothex}]\n",
            "cart_promotions.0.promotion_id",
        ),
        (
            "version: x\nloyalty_promotions: [{program_id: 1, promotion_id: 2, "
            "assume_earned_when_unlisted: true}]\n",
            "loyalty_promotions.0",
        ),
        (
            "version: x\ncart_promotions: [{promotion_id: 69058646b1cfc114606f7bbe, "
            "mode: PAYMENT_VOUCHER, without_earn_ids: deactivate_participation}]\n",
            "cart_promotions.0",
        ),
        ("version: x\ncoupon_series: [{series_id: 1}, {series_id: 1}]\n", "(top level)"),
        (
            "version: x\ncustomer: {registration_source_by_channel: {POS: IN_STORE}}\n",
            "customer.registration_source_by_channel.POS",
        ),
    ],
)
def test_parse_policy_with_bad_key_raises_configuration_error_naming_it(
    text: str, key: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_policy(_yaml(text), "shop/policy.yaml")

    assert raised.value.context["key"] == key
    assert raised.value.context["file"] == "shop/policy.yaml"
    assert repr(key) in str(raised.value)


def test_parse_policy_with_several_bad_keys_names_each() -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_policy(
            {"version": "x", "return_windw_days": 3, "order_date_unknown": "guess"}, "p.yaml"
        )

    problems = raised.value.context["problems"]
    assert "return_windw_days: Extra inputs are not permitted" in problems
    assert "order_date_unknown: " in problems
    assert "and 1 more" in raised.value.message


def test_parse_policy_of_something_not_a_mapping_raises_configuration_error() -> None:
    not_a_mapping: Any = ["version", "x"]

    with pytest.raises(ConfigurationError, match="mapping") as raised:
        parse_policy(not_a_mapping, "p.yaml")

    assert raised.value.context["file"] == "p.yaml"


@pytest.mark.parametrize(
    ("given", "read_as"),
    [
        ("instore", RegistrationSource.INSTORE),
        ("Web_Engage", RegistrationSource.WEB_ENGAGE),
        ("ALL", RegistrationSource.ALL),
    ],
)
def test_parse_policy_registration_source_in_any_case_is_read_as_upper_case(
    given: str, read_as: RegistrationSource
) -> None:
    policy = parse_policy(
        {"version": "x", "customer": {"registration_source_by_channel": {"POS": given}}}, "p"
    )

    assert policy.customer.registration_source_by_channel == {Channel.POS: read_as}


def test_parse_policy_unknown_registration_source_lists_the_allowed_values() -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_policy(
            {"version": "x", "customer": {"registration_source_by_channel": {"ECOMMERCE": "WEB"}}},
            "shop/policy.yaml",
        )

    message = str(raised.value)
    assert "'customer.registration_source_by_channel.ECOMMERCE'" in message
    for allowed in [source.value for source in RegistrationSource]:
        assert allowed in message


def _loyalty_earn(program_id: int, **keys: Any) -> LoyaltyEarn:
    return LoyaltyEarn.model_validate(
        {"program_id": program_id, "promotion_type": "DIRECT", **keys}
    )


def test_rule_lookups_find_what_a_scan_of_the_lists_finds() -> None:
    policy = parse_policy(
        {
            "version": "1",
            "loyalty_promotions": [
                {"program_id": 1, "promotion_id": 10, "promo_identifier": "ten"},
                {"program_id": 2, "promotion_id": 10},
                {"program_id": 1, "promo_identifier": "eleven"},
            ],
            "cart_promotions": [{"promotion_id": "AB" * 12}, {"promotion_id": "cd" * 12}],
            "coupon_series": [{"series_id": 7}, {"series_id": 8}],
        },
        "test",
    )
    first, second, third = policy.loyalty_promotions
    assert policy.loyalty_rule(_loyalty_earn(1, promotion_id=10)) is first
    assert policy.loyalty_rule(_loyalty_earn(1, promo_identifier="ten")) is first
    assert policy.loyalty_rule(_loyalty_earn(2, promotion_id=10)) is second
    assert policy.loyalty_rule(_loyalty_earn(1, promo_identifier="eleven")) is third
    assert policy.loyalty_rule(_loyalty_earn(2, promo_identifier="ten")) is None
    assert policy.loyalty_rule(_loyalty_earn(3, promotion_id=10)) is None
    # Cart promotion ids are hex: compared without case.
    assert policy.cart_rule("ab" * 12) is policy.cart_promotions[0]
    assert policy.cart_rule("CD" * 12) is policy.cart_promotions[1]
    assert policy.cart_rule("ef" * 12) is None
    assert policy.series_rule(8) is policy.coupon_series[1]
    assert policy.series_rule(9) is None


def test_a_copy_with_other_rules_looks_up_its_own_rules() -> None:
    policy = parse_policy({"version": "1", "coupon_series": [{"series_id": 7}]}, "test")
    assert policy.series_rule(7) is not None  # the index is built and cached here
    copy = policy.model_copy(update={"coupon_series": [CouponSeriesPolicy(series_id=9)]})
    assert copy.series_rule(7) is None
    assert copy.series_rule(9) is copy.coupon_series[0]
    assert policy.series_rule(7) is policy.coupon_series[0]
