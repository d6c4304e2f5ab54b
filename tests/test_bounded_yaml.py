"""The bounded YAML loader, and every place the portal reads template YAML going through it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.test import Client

from demos.bounded_yaml import MAX_BYTES, BoundedYAMLError, load_bounded
from demos.engine import lifecycle
from demos.engine.specs import SpecError, parse_yaml
from demos.errors import LifecycleError
from demos.models import Demo, DemoTemplate, TemplateChart
from tests.conftest import change_url, form_data, snapshot


def alias_bomb(levels: int) -> str:
    """A "billion laughs": each level is nine references to the one before."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


class TestLoader:
    def test_it_reads_plain_yaml_like_safe_load(self) -> None:
        text = "image:\n  tag: '1.2'\nreplicas: 2\nhosts: [a, b]\nflag: true\n"
        assert load_bounded(text, field="Values") == {
            "image": {"tag": "1.2"},
            "replicas": 2,
            "hosts": ["a", "b"],
            "flag": True,
        }
        assert load_bounded("  \n", field="Values") is None

    def test_an_alias_bomb_is_refused_before_it_expands(self) -> None:
        started = time.monotonic()
        with pytest.raises(BoundedYAMLError) as refused:
            load_bounded(alias_bomb(9), field="Values of chart shop")
        assert time.monotonic() - started < 0.5
        assert str(refused.value) == (
            "Values of chart shop: anchors and aliases (&name, *name, <<: *name) are not "
            "accepted; write each value out in full (line 1, column 5)."
        )
        assert refused.value.field == "Values of chart shop"

    @pytest.mark.parametrize(
        "text",
        [
            "a: &x 1\n",  # an anchor alone is refused too: it is only there to be aliased
            "base: &base {a: 1}\nother:\n  <<: *base\n",
            "a: *undefined\n",
        ],
    )
    def test_anchors_aliases_and_merge_keys_are_refused(self, text: str) -> None:
        with pytest.raises(BoundedYAMLError, match="anchors and aliases"):
            load_bounded(text, field="Credentials")

    def test_dates_stay_text_so_specs_stay_json(self) -> None:
        loaded = load_bounded("release: 2024-01-01\nat: 2024-01-01 10:00:00\n", field="Values")

        assert loaded == {"release": "2024-01-01", "at": "2024-01-01 10:00:00"}
        assert json.dumps(loaded)

    def test_the_size_is_capped_per_field(self) -> None:
        at_limit = "a: " + "x" * (MAX_BYTES - 3)
        assert load_bounded(at_limit, field="F") == {"a": "x" * (MAX_BYTES - 3)}
        with pytest.raises(BoundedYAMLError, match=r"^Credentials: 65,537 bytes .* 64 KiB"):
            load_bounded("a" * (MAX_BYTES + 1), field="Credentials")

    def test_the_number_of_values_is_capped(self) -> None:
        assert len(load_bounded("[" + "1," * 9_000 + "]", field="F")) == 9_000
        with pytest.raises(BoundedYAMLError, match="more than 10,000 values"):
            load_bounded("[" + "1," * 10_001 + "]", field="F")

    def test_deep_nesting_is_refused_not_a_crash(self) -> None:
        with pytest.raises(BoundedYAMLError, match="nested more than 64 levels"):
            load_bounded("[" * 5_000 + "]" * 5_000, field="F")

    def test_syntax_errors_name_the_field_line_and_column(self) -> None:
        with pytest.raises(BoundedYAMLError) as refused:
            load_bounded("host: a\nimage: [unclosed\n", field="Values of chart app0")
        assert str(refused.value).startswith(
            "Values of chart app0: invalid YAML at line 3, column 1:"
        )

    def test_only_safe_tags_are_constructed(self) -> None:
        with pytest.raises(BoundedYAMLError, match="could not determine a constructor"):
            load_bounded("a: !!python/object/apply:os.system [id]\n", field="F")

    def test_the_spec_parser_uses_it(self) -> None:
        with pytest.raises(SpecError, match=r"^Credentials: anchors and aliases"):
            parse_yaml("a: &x 1\nb: *x\n", "Credentials")


class TestTemplateSave:
    @pytest.mark.parametrize(
        ("field", "label"),
        [
            ("charts-0-values", "Values of chart app0"),
            ("credentials", "Credentials"),
            ("vcluster_overrides", "vCluster overrides"),
        ],
    )
    def test_an_alias_bomb_is_refused_on_save(
        self, admin_client: Client, template: DemoTemplate, field: str, label: str
    ) -> None:
        before = snapshot(template)
        response = admin_client.post(
            change_url(template), form_data(template, **{field: alias_bomb(4)})
        )
        assert response.status_code == 200
        assert f"{label}: anchors and aliases" in response.content.decode()
        assert snapshot(template) == before

    def test_an_oversized_field_is_refused_on_save(
        self, admin_client: Client, template: DemoTemplate
    ) -> None:
        values = "notes: |\n" + "  filler text for the chart\n" * 3_000
        response = admin_client.post(
            change_url(template), form_data(template, **{"charts-1-values": values})
        )
        assert "Values of chart app1: " in response.content.decode()
        assert "more than the 64 KiB allowed" in response.content.decode()


class TestStart:
    def test_a_stored_bomb_fails_the_start_at_once_instead_of_running_it(
        self, template: DemoTemplate, alice: Any, rq_redis: Any
    ) -> None:
        # Saved before the loader existed (or straight into the database).
        TemplateChart.objects.filter(template=template, position=0).update(values=alias_bomb(4))
        started = time.monotonic()
        with pytest.raises(LifecycleError, match="anchors and aliases"):
            lifecycle.start_demo(template=template, owner=alice)
        assert time.monotonic() - started < 2
        assert not Demo.objects.exists()
