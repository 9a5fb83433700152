"""tiergate's HTTP gateway: app factory, routes, services and the CLI."""
