"""Charges an order (a stand-in: it only says what it would charge)."""


def handler(event, context):
    return {"order": event["order"], "charged": event["amount"]}
