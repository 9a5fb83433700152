"""Writes the invoice of an approved order."""


def handler(event, context):
    if not event["approved"]:
        raise ValueError(f"order {event['order']} was not approved (by {event['approved_by']})")
    return {
        "order": event["order"],
        "lines": event["lines"],
        "total": event["total"],
        "ships_in_days": event["ships_in_days"],
        "approved_by": event["approved_by"],
    }
