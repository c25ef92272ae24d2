"""A local stand-in for Capillary's five endpoints, with state, limits, error codes and faults.

Run it with ``capillary-sandbox`` or in-process with ``async with Sandbox(config)``.
"""

from capillary_sandbox.faults import FailNext, FaultConfig, FaultRule, Faults
from capillary_sandbox.ledger import LedgerReport
from capillary_sandbox.server import (
    REQUEST_ID_HEADER,
    CallRecord,
    Sandbox,
    SandboxConfig,
    serve_forever,
)
from capillary_sandbox.state import SandboxSeed, SandboxState, demo_seed, load_seed_file

__all__ = [
    "REQUEST_ID_HEADER",
    "CallRecord",
    "FailNext",
    "FaultConfig",
    "FaultRule",
    "Faults",
    "LedgerReport",
    "Sandbox",
    "SandboxConfig",
    "SandboxSeed",
    "SandboxState",
    "demo_seed",
    "load_seed_file",
    "serve_forever",
]
