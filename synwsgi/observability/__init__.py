"""What a deployment watches: hooks, the access log, metrics, tracing, log context.

Every piece plugs into the request through `hooks.RequestHooks` (a site
without hooks pays nothing for them), so they live together, built on the
core; of the core only `site` (the hooks) and `devserver` (the log setup)
import from here. `RequestHooks`, `AccessLogger`, `logging_config`,
`ServerMetrics` and `MetricsResource` are also exported by `synwsgi`. This
package imports none of its modules: `metrics` imports prometheus_client,
which must not be imported before a gunicorn config has set
PROMETHEUS_MULTIPROC_DIR.
"""
