"""Says when an order can ship from its warehouse (a stand-in for a stock lookup)."""

SHIPS_IN_DAYS = {"berlin": 1, "hamburg": 1, "lisbon": 4}


def handler(event, context):
    warehouse = event.get("warehouse") or "berlin"
    if warehouse not in SHIPS_IN_DAYS:
        raise ValueError(f"no warehouse {warehouse!r}")
    return {"in_stock": True, "ships_in_days": SHIPS_IN_DAYS[warehouse]}
