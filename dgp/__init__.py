"""dgp-bench core: data, models, gradients, metrics, communication cost, config and jobs."""
