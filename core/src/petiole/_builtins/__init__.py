"""The core's built-in components: the memory and SQLite transports and result backends."""
