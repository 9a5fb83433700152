def handler(event, context):
    raise ValueError("the input was not acceptable")
