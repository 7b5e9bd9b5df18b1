"""The entry points the workflow runs (`python -m dgp.jobs.privacy`, `.train`,
`.aggregate`) and the config validation that comes before them: the top layer, above the
core, the plugins and federated training."""
