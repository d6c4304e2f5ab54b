"""Sample templates and development users, so a fresh `make run` shows a working catalog.

Idempotent: running it again changes nothing that exists. The charts live in `k8s/charts/`; an
operator publishes them to their own OCI registry (see k8s/charts/README.md) and points the
templates' repository at it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction

from demos import roles
from demos.models import DemoTemplate, ExpiryAction, TemplateChart
from demos.studio.versions import Actor, record_row_as_version

SAMPLE_CHART_REPOSITORY = "oci://registry.example.com/demo-portal/charts"

SAMPLE_TEMPLATES: list[dict[str, Any]] = [
    {
        "slug": "webshop",
        "name": "Web shop",
        "tagline": "A storefront with its product database, ready to take orders.",
        "description": (
            "A complete online shop: the **storefront**, an admin back office and a "
            "PostgreSQL database with sample products.\n\n"
            "Good for showing the checkout flow and the back office to retail prospects."
        ),
        "prospect_description": (
            "Your own copy of our online shop: browse the **storefront**, place an order and "
            "follow it through the back office. Everything here is yours to try; nothing you "
            "do reaches real customers."
        ),
        "icon": "shop",
        "colour": "#0f766e",
        "instructions": (
            "Open the shop at https://${DEMO_HOST}/ and sign in to the back office at "
            "https://${DEMO_HOST}/admin/ with the credentials below.\n\n"
            "Try: add a product, place an order, then watch it arrive in the back office."
        ),
        "credentials": "Back office user: admin\nBack office password: demo-shop",
        "expiry_action": ExpiryAction.PAUSE,
        # The storefront (chart `webshop`, release `shop`) serves the live link.
        "entry_service": "shop/shop-web:80",
        "sleep_after": timedelta(minutes=30),
        "charts": [
            {
                "release_name": "shop-db",
                "chart": "webshop-db",
                "namespace": "shop",
                "values": "storage: 1Gi\nseedProducts: true\n",
            },
            {
                "release_name": "shop",
                "chart": "webshop",
                "namespace": "shop",
                "values": (
                    "host: ${DEMO_HOST}\n"
                    "database:\n  host: shop-db.shop.svc\n"
                    "banner: Welcome to the demo shop\n"
                ),
            },
        ],
    },
    {
        "slug": "observability",
        "name": "Observability stack",
        "tagline": "Metrics, dashboards and alerts for a sample microservice app.",
        "description": (
            "Prometheus-style metrics, dashboards and alerting around a small sample "
            "microservice app that generates realistic traffic.\n\n"
            "Good for platform and SRE teams."
        ),
        "prospect_description": (
            "A sample microservice app under realistic traffic, with its metrics, dashboards "
            "and alerts. Explore the dashboards, then break something and watch the alerts fire."
        ),
        "icon": "chart",
        "colour": "#7c3aed",
        "instructions": (
            "Dashboards are at https://${DEMO_HOST}/. The sample app produces traffic on its "
            "own; an alert fires about five minutes after start."
        ),
        "credentials": "Dashboard user: viewer\nDashboard password: demo-metrics",
        "expiry_action": ExpiryAction.DELETE,
        "default_lifetime": timedelta(hours=1),
        # Grafana (chart `observability`, release `metrics`) serves the live link.
        "entry_service": "monitoring/metrics-grafana:80",
        "charts": [
            {
                "release_name": "metrics",
                "chart": "observability",
                "namespace": "monitoring",
                "values": "host: ${DEMO_HOST}\nretention: 6h\n",
            },
            {
                "release_name": "sample-app",
                "chart": "sample-app",
                "namespace": "apps",
                "values": "replicas: 2\ntrafficPerSecond: 5\n",
            },
        ],
    },
    {
        "slug": "data-platform",
        "name": "Data platform",
        "tagline": "Ingest, transform and query a sample dataset end to end.",
        "description": (
            "A small data platform with an ingestion pipeline, a query engine and a notebook "
            "UI, loaded with a sample sales dataset."
        ),
        "prospect_description": (
            "A data platform loaded with a sample sales dataset: ingest a file, transform it and "
            "query the result from the notebook."
        ),
        "icon": "database",
        "colour": "#b45309",
        "instructions": "Open the notebook UI at https://${DEMO_HOST}/ and run the first cell.",
        "credentials": "Notebook token: demo-data",
        "expiry_action": ExpiryAction.ARCHIVE,
        "default_lifetime": timedelta(hours=3),
        "max_lifetime": timedelta(hours=12),
        # The notebook UI (chart `notebooks`, release `notebooks`) serves the live link.
        "entry_service": "data/notebooks:80",
        "charts": [
            {
                "release_name": "pipeline",
                "chart": "ingest-pipeline",
                "namespace": "data",
                "values": "dataset: sample-sales\n",
            },
            {
                "release_name": "notebooks",
                "chart": "notebooks",
                "namespace": "data",
                "values": "host: ${DEMO_HOST}\n",
            },
        ],
    },
]


@transaction.atomic
def seed_templates() -> list[DemoTemplate]:
    """Create the sample templates that do not exist yet, published as version 1; leave
    existing ones alone."""
    created = []
    for sample in SAMPLE_TEMPLATES:
        fields = {key: value for key, value in sample.items() if key not in ("slug", "charts")}
        template, was_created = DemoTemplate.objects.get_or_create(
            slug=sample["slug"], defaults=fields
        )
        if not was_created:
            continue
        for position, chart in enumerate(sample["charts"]):
            TemplateChart.objects.create(
                template=template,
                position=position,
                repository=SAMPLE_CHART_REPOSITORY,
                version="0.1.0",
                **chart,
            )
        record_row_as_version(template=template, actor=Actor(label="seed"), note="Sample template.")
        created.append(template)
    return created


@transaction.atomic
def seed_dev_users(password: str) -> list[str]:
    """A development superuser `admin` and salesperson `sales`. Only for local development."""
    created = []
    for username, superuser in (("admin", True), ("sales", False)):
        if User.objects.filter(username=username).exists():
            continue
        make = User.objects.create_superuser if superuser else User.objects.create_user
        user = make(username, f"{username}@example.com", password, first_name=username.title())
        if not superuser:
            user.groups.add(Group.objects.get(name=roles.SALES))
        created.append(username)
    return created
