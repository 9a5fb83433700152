"""A nightly report (a stand-in: it says which report it would make)."""


def handler(event, context):
    return {"report": event["report"], "made_by": context.execution_id}
