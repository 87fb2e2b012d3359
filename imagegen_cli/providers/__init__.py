"""Provider dialects: one module each, all registered through `base.register`."""
