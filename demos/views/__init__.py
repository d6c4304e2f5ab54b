from demos.views.sales import catalog

__all__ = ["catalog"]
