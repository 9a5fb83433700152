"""Checks an order: one without a total is refused (its failure chain tells support)."""


def handler(event, context):
    if "total" not in event:
        raise ValueError(f"order {event.get('id')} has no total")
    return {"id": event["id"], "total": event["total"], "valid": True}
