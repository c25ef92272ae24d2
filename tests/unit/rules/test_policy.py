"""Loading the policy: the packaged default, a file, and errors that name the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigurationError
from service.events import Channel
from service.rules import load_policy, parse_policy
from service.rules.policy import LoyaltyWithoutEarnIds, WithoutThreshold

ROOT = Path(__file__).resolve().parents[3]


def test_load_policy_without_path_returns_documented_defaults() -> None:
    policy = load_policy(None)

    assert policy.version == "default-1"
    assert policy.return_window_days is None
    assert policy.full_return.revoke_enrolment is True
    assert policy.partial_return.revoke_enrolment is False
    assert policy.partial_return.without_threshold is WithoutThreshold.KEEP
    assert policy.redeemed.flag_for_clawback is False
    assert policy.customer.loyalty_identifier_preference == ["id", "mobile", "email"]
    assert policy.customer.registration_source_by_channel == {
        Channel.POS: "INSTORE",
        Channel.ECOMMERCE: "ECOMMERCE",
    }
    assert (policy.loyalty_promotions, policy.cart_promotions, policy.coupon_series) == ([], [], [])


def test_load_policy_from_file_reads_rules(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: shop-7\n"
        "return_window_days: 14\n"
        "loyalty_promotions:\n"
        "  - {program_id: 2714, promotion_id: 202090, without_earn_ids: revoke_all,\n"
        "     threshold: {kind: SPEND, minimum: 49.99}}\n",
        encoding="utf-8",
    )

    policy = load_policy(path)

    assert policy.version == "shop-7"
    assert policy.return_window_days == 14
    rule = policy.loyalty_promotions[0]
    assert rule.without_earn_ids is LoyaltyWithoutEarnIds.REVOKE_ALL
    assert rule.threshold is not None
    assert str(rule.threshold.minimum) == "49.99"


def test_example_policy_loads() -> None:
    policy = load_policy(ROOT / "examples" / "policy.yaml")

    assert policy.version == "demo-1"
    assert policy.series_rule(415500) is not None


@pytest.mark.parametrize(
    ("text", "version"),
    [("version: 2026-11-24\n", "2026-11-24"), ("version: 3\n", "3")],
)
def test_parse_policy_with_unquoted_version_keeps_its_text(text: str, version: str) -> None:
    assert parse_policy(text, "p.yaml").version == version


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
    ],
)
def test_parse_policy_with_bad_key_raises_configuration_error_naming_it(
    text: str, key: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_policy(text, "shop/policy.yaml")

    assert raised.value.context["key"] == key
    assert raised.value.context["file"] == "shop/policy.yaml"
    assert repr(key) in str(raised.value)


def test_load_policy_with_bad_key_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: x\nreturn_windw_days: 3\n", encoding="utf-8")

    with pytest.raises(ConfigurationError) as raised:
        load_policy(path)

    assert raised.value.context == {
        "file": str(path),
        "key": "return_windw_days",
        "problems": "return_windw_days: Extra inputs are not permitted",
    }


@pytest.mark.parametrize("text", ["version: [unclosed\n", "- just\n- a list\n", ""])
def test_parse_policy_that_is_not_a_yaml_mapping_raises_configuration_error(text: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_policy(text, "p.yaml")

    assert raised.value.context["file"] == "p.yaml"


def test_load_policy_missing_file_raises_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_policy(tmp_path / "absent.yaml")
