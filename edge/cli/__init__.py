"""Command-line apps: ``edge`` and ``edge-export``. Heavy imports happen inside the commands."""
