"""One router per resource: predict, taxonomy, models, retrain (and its jobs), health (with metrics)."""

from service.api import health, models, predict, retrain, taxonomy

routers = [predict.router, taxonomy.router, models.router, retrain.router, health.router]

__all__ = ["routers"]
