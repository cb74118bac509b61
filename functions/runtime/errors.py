"""Typed agent errors. The class name is the error name Step Functions' Retry and Catch match on."""


class AgentError(Exception):
    """Base class: an agent refused or failed a step for a reason it can name."""


class BadInput(AgentError):
    """The step input does not match the agent's contract."""


class DeadlineExceeded(AgentError):
    """The envelope's deadline passed before the step started: stale work is refused, never run."""


class BadOutput(AgentError):
    """The agent's service returned something its contract does not allow."""


class StepPaused(AgentError):
    """The step waits for a person: the attempt is recorded ``ESCALATED``, never counted as the agent's error."""
