"""HTTP handlers: parse, call a service, render. No storage or runtime access here."""
