"""Settings: one table drives the config file, environment variables and flags."""

from sandhaven.config.settings import (
    SETTINGS,
    Secret,
    Setting,
    Settings,
    load_settings,
    sample_config,
)

__all__ = ["SETTINGS", "Secret", "Setting", "Settings", "load_settings", "sample_config"]
