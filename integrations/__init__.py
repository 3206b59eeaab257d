"""Blueprints that use the core: each subpackage has an `init_app(app)`."""
