"""Top-level alias so the operations manual's check works from the deploy directory.

``python3 -c "from config_manager import ConfigManager; print(ConfigManager().validate())"``
"""

from procurement.config_manager import SETTINGS, ConfigError, ConfigManager

__all__ = ["SETTINGS", "ConfigError", "ConfigManager"]
