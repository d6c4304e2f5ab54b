from demos.views.sales import catalog, demo_detail
from demos.views.simulated import simulated_app

__all__ = ["catalog", "demo_detail", "simulated_app"]
