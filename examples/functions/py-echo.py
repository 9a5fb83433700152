"""A Python function that returns its input (the benchmark function)."""


def handler(event, context):
    return event
