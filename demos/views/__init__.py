from demos.views.catalog import catalog, start, template_accents
from demos.views.sales import demo_detail, demo_status, my_demos
from demos.views.sales_actions import demo_action, restore
from demos.views.simulated import simulated_app

__all__ = [
    "catalog",
    "demo_action",
    "demo_detail",
    "demo_status",
    "my_demos",
    "restore",
    "simulated_app",
    "start",
    "template_accents",
]
