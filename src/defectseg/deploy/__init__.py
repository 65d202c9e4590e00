"""Deploy: the comparison's recommended model shipped as one folder, fetched by name from the registry, and served over HTTP."""
