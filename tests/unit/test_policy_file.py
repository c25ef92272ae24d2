"""Reading the policy file: the packaged default, a merchant's file, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.errors import ConfigurationError
from service.events import Channel
from service.policy_file import load_policy, policy_from_yaml

ROOT = Path(__file__).resolve().parents[2]


def test_load_policy_without_path_returns_documented_defaults() -> None:
    policy = load_policy(None)

    assert policy.version == "default-1"
    assert policy.return_window_days is None
    assert policy.full_return.revoke_enrolment is True
    assert policy.partial_return.revoke_enrolment is False
    assert policy.partial_return.without_threshold == "keep"
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
    assert rule.without_earn_ids == "revoke_all"
    assert rule.threshold is not None
    assert str(rule.threshold.minimum) == "49.99"


def test_example_policy_loads() -> None:
    policy = load_policy(ROOT / "examples" / "policy.yaml")

    assert policy.version == "demo-1"
    assert policy.series_rule(415500) is not None


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


def test_load_policy_with_lower_case_registration_source_reads_upper_case(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "version: x\ncustomer:\n  registration_source_by_channel: {POS: instore}\n",
        encoding="utf-8",
    )

    policy = load_policy(path)

    assert policy.customer.registration_source_by_channel == {Channel.POS: "INSTORE"}


@pytest.mark.parametrize("text", ["version: [unclosed\n", "- just\n- a list\n", ""])
def test_policy_from_yaml_that_is_not_a_yaml_mapping_raises_configuration_error(
    text: str,
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        policy_from_yaml(text, "p.yaml")

    assert raised.value.context["file"] == "p.yaml"


def test_load_policy_missing_file_raises_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read"):
        load_policy(tmp_path / "absent.yaml")
