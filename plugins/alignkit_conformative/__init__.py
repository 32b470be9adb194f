"""alignkit plugin: conformative. Registered through the `alignkit` entry-point group; algorithms land here."""
