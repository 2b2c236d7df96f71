"""One router per resource: predict, taxonomy, models, retrain (and its jobs), health (with metrics), items, review."""

from service.api import health, items, models, predict, retrain, review, taxonomy

routers = [predict.router, taxonomy.router, models.router, retrain.router, health.router, items.router, review.router]

__all__ = ["routers"]
