"""The storage initializer: the init container of a model's pods (engine.model_delivery)."""
