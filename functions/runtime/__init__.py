"""Shared agent runtime, shipped to every Lambda as a layer.

It turns a step input (an envelope) into a checked call of a pure service and leaves one decision
record per step: which agent decided, on what inputs, with what result, and how long it took.
"""

from functions.runtime.agent import Agent, AgentIdentity, Step
from functions.runtime.decisions import DecisionRecord, DecisionStore, DynamoDecisionStore, InMemoryDecisionStore
from functions.runtime.errors import AgentError, BadInput, DeadlineExceeded
from functions.runtime.snapstart import install as _install_snapstart_hooks

_install_snapstart_hooks()  # every function imports this package during its init: the hooks are in place

__all__ = [
    "Agent",
    "AgentError",
    "AgentIdentity",
    "BadInput",
    "DeadlineExceeded",
    "DecisionRecord",
    "DecisionStore",
    "DynamoDecisionStore",
    "InMemoryDecisionStore",
    "Step",
]
