"""One router per resource: predict, taxonomy, models, health (with metrics), items, review."""

from service.api import health, items, models, predict, review, taxonomy

routers = [predict.router, taxonomy.router, models.router, health.router, items.router, review.router]

__all__ = ["routers"]
