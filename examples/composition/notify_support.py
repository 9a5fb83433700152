"""Tells support about an order that could not be processed (a stand-in: it logs it)."""


def handler(event, context):
    print(f"support: order {event['order']}: {event['problem']} ({event['severity']})")
    return {"notified": True, "order": event["order"]}
