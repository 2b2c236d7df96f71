"""One router per resource: predict, taxonomy, models, health (with metrics)."""

from service.api import health, models, predict, taxonomy

routers = [predict.router, taxonomy.router, models.router, health.router]

__all__ = ["routers"]
