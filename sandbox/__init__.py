"""The built-in athenahealth sandbox: a faithful local API with realistic data and faults.

from sandbox import SandboxConfig, SandboxServer
with SandboxServer(SandboxConfig(seed=7)) as server:
    server.url  # http://127.0.0.1:<free port>
"""

from sandbox.config import ConfigError, FaultConfig, SandboxConfig
from sandbox.server import SandboxServer
from sandbox.store import Mutation

__all__ = ["ConfigError", "FaultConfig", "Mutation", "SandboxConfig", "SandboxServer"]
