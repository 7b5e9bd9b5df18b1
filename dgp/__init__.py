"""dgp-bench core: the plugin contracts (`dgp.defense`, `dgp.attack`), the label rules and
band masks they share, shared types, data, models, gradients, metrics, communication cost,
federated training (`dgp.fl`) and output files. It imports no plugin: the defenses and
attacks build on it, and the jobs (`jobs`) and the report sit above them."""
