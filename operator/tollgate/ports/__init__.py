"""The ports: what the runtime needs from the outside world, as protocols (implementations in adapters).

metrics   MetricsProvider: SLO observations for a batch of analysis requests (Prometheus is one)
router    Router: move traffic fast, and put it all on stable when Tollgate lets go
"""
