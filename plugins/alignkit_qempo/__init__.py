"""alignkit plugin: qempo. Registered through the `alignkit` entry-point group; algorithms land here."""
