"""Checks an order: it needs items, each with a sku and a positive whole quantity."""


def handler(event, context):
    items = event.get("items") or []
    if not items:
        raise ValueError(f"order {event.get('id')} has no items")
    for item in items:
        qty = item.get("qty")
        if not item.get("sku") or not isinstance(qty, int) or qty <= 0:
            raise ValueError(f"order {event.get('id')}: bad item {item}")
    lines = sorted(({"sku": i["sku"], "qty": i["qty"]} for i in items), key=lambda i: i["sku"])
    return {"id": event["id"], "items": lines}
