"""A Python function: greets by name, logs through print and logging, reads its env."""

import logging
import os

log = logging.getLogger(__name__)


def handler(event, context):
    name = (event or {}).get("name", "world")
    print(f"greeting {name}")
    log.info("execution %s, %d ms left", context.execution_id, context.remaining_time_ms())
    return {"message": f"{os.environ.get('GREETING', 'hello')}, {name}!"}
