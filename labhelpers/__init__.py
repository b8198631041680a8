"""labhelpers: the code behind the clickstream anomaly-detection lab's notebooks.

Modules, one per stage: config, emulator, stack, generator / traffic, job / app / replay,
alerts / alert_handler, monitor, cleanup. The notebooks call these; so does
``python -m labhelpers``.
"""

from .analytics.forest import ForestParams
from .errors import LabError
from .infra.config import LabConfig, load_config

__all__ = ["ForestParams", "LabConfig", "LabError", "load_config"]
__version__ = "0.1.0"
