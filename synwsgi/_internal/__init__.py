"""synwsgi's machinery: no stable API, nothing here is for users to import.

These modules do one step each of the request pipeline that `synwsgi.site`
runs (the raw path, routing, the gevent/threads runtime, the error table,
...). They may change in any release; what users need from them is
exported by `synwsgi` itself (`cooperate`) or shown through public objects
(`request.args` is a Werkzeug `MultiDict`). Werkzeug marks its own the same
way (`werkzeug._internal`).
"""
