"""alignkit plugin: poet. Registered through the `alignkit` entry-point group; algorithms land here."""
