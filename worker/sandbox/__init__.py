"""The built-in athenahealth sandbox: a faithful local API with realistic data and faults.

from worker.sandbox import SandboxConfig, SandboxServer
with SandboxServer(SandboxConfig(seed=7)) as server:
    server.url  # http://127.0.0.1:<free port>
"""

from worker.sandbox.config import ConfigError, FaultConfig, SandboxConfig
from worker.sandbox.server import SandboxServer
from worker.sandbox.store import Mutation

__all__ = ["ConfigError", "FaultConfig", "Mutation", "SandboxConfig", "SandboxServer"]
