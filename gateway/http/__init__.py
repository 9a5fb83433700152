"""HTTP only: the app factory, middleware, routes, problem documents, the OpenAPI document, the
reviewer page and the server. Handlers parse, call one service method, render. May import every
other gateway package; nothing imports it but the CLI's ``serve``."""
