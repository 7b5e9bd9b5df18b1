"""dgp-bench core: shared types, data, models, gradients, metrics, communication cost and
output files, below the plugins (defenses, attacks); federated training (`dgp.fl`) and the
job entry points (`dgp.jobs`) sit above both."""
