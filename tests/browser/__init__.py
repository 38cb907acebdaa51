"""Real-browser tests: headless Chromium against the showcase app under gunicorn."""
