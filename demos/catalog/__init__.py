"""Demo templates as admins author them: validation on save, the preview, versions and copies."""
