"""Key-value stores: metadata, keys, pointers and small blobs."""
