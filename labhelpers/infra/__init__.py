"""infra: see labhelpers/__init__.py for the map."""
