"""The template studio: template admins author, test, publish and roll back demo templates."""
