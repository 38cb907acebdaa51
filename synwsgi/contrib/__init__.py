"""Optional integrations, each behind an extra: nothing under `synwsgi.contrib` is
imported by synwsgi itself, so a missing extra never breaks the core."""
