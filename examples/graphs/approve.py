"""Approves an order up to 1000 by policy; a larger one fails here, so the cascade hands it to a
person (the human tier of approve.json)."""

LIMIT = 1000


def handler(event, context):
    if event["total"] <= LIMIT:
        return {"approved": True, "by": "policy"}
    raise ValueError(f"order {event['order']}: a total of {event['total']} needs a person")
