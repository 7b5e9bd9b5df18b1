"""The entry points the workflow runs (`python -m jobs.privacy`, `.train`, `.labels`,
`.tune`, `.aggregate`) and the config validation that comes before them: the top layer,
the only one that wires plugins and the core together."""
