"""A local stand-in for Capillary's five endpoints, with state, limits, error codes and faults.

Run it with ``return-handler sandbox`` or in-process with ``async with Sandbox(config)``.
"""

from service.capillary.sandbox.faults import FailNext, FaultConfig, FaultRule, Faults
from service.capillary.sandbox.server import (
    REQUEST_ID_HEADER,
    CallRecord,
    Sandbox,
    SandboxConfig,
    serve_forever,
)
from service.capillary.sandbox.state import SandboxSeed, SandboxState, demo_seed, load_seed_file

__all__ = [
    "REQUEST_ID_HEADER",
    "CallRecord",
    "FailNext",
    "FaultConfig",
    "FaultRule",
    "Faults",
    "Sandbox",
    "SandboxConfig",
    "SandboxSeed",
    "SandboxState",
    "demo_seed",
    "load_seed_file",
    "serve_forever",
]
