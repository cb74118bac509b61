"""Errors in CDK context values, shared by the app and the pipeline (`python -m infra.app` reports them in one line)."""


class ContextError(ValueError):
    """A missing or malformed context value; the message is one line that names the key."""
