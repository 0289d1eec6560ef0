"""Real Kafka and PostgreSQL for tests: started once per session on free ports."""

from services.stack.ephemeral import EphemeralStack as LiveStack
from services.stack.ephemeral import start_ephemeral_stack as start_test_stack
from services.stack.ephemeral import stop_ephemeral_stack

__all__ = ["LiveStack", "start_test_stack", "stop_ephemeral_stack"]
