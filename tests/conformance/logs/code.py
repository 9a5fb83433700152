def handler(event, context):
    print("saying hello")
    return {"message": "hello from wasm"}
