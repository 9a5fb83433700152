"""Object stores: where code and compiled artifacts live."""
